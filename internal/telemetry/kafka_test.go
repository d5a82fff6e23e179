package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/herald-dev/herald/internal/telemetry"
)

// TestTraceHeaders pins that records produced in a span carry its context,
// and that a record with a traceparent of its own (a retry's hop) keeps it.
func TestTraceHeaders(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("t"),
		kgo.WithHooks(telemetry.TraceHeaders{}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tp := sdktrace.NewTracerProvider()
	sctx, span := tp.Tracer("test").Start(ctx, "produce")
	const own = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
	err = cl.ProduceSync(sctx,
		&kgo.Record{Value: []byte("in span")},
		&kgo.Record{Value: []byte("own"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(own)}}},
	).FirstErr()
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no span")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	rc, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string][]string{}
	for len(got) < 3 {
		fs := rc.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var tps []string
			for _, h := range r.Headers {
				if h.Key == "traceparent" {
					tps = append(tps, string(h.Value))
				}
			}
			got[string(r.Value)] = tps
		})
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(sctx, c)
	want := map[string][]string{"in span": {c["traceparent"]}, "own": {own}, "no span": nil}
	for v, tps := range want {
		if len(got[v]) != len(tps) || (len(tps) == 1 && got[v][0] != tps[0]) {
			t.Errorf("record %q has traceparent %v, want %v", v, got[v], tps)
		}
	}
}
