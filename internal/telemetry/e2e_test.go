package telemetry_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
)

// The acceptance test of tracing needs a real Jaeger: deploy/local/jaeger.sh
// start prints the query URL (HERALD_TEST_JAEGER); HERALD_TEST_OTLP is its
// OTLP/HTTP receiver, e.g. http://127.0.0.1:4318.
const (
	envJaeger = "HERALD_TEST_JAEGER"
	envOTLP   = "HERALD_TEST_OTLP"
)

// exportingProvider is a tracer provider of its own for a program around
// herald (the producer, the subscriber), exporting to the test's Jaeger.
func exportingProvider(t *testing.T, otlp, service string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(strings.TrimRight(otlp, "/")+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))))
}

// subscriber is an otelhttp-instrumented webhook endpoint that fails the
// first request of every delivery with 500 and accepts the next.
type subscriber struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string][]string // webhook-id → traceparent of each request
}

func newSubscriber(tp trace.TracerProvider) *subscriber {
	s := &subscriber{seen: map[string][]string{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		s.mu.Lock()
		s.seen[id] = append(s.seen[id], r.Header.Get("traceparent"))
		n := len(s.seen[id])
		s.mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s.srv = httptest.NewServer(otelhttp.NewHandler(h, "receive webhook",
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{})))
	return s
}

func (s *subscriber) requests(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen[id]...)
}

// TestTraceFromProducerToSubscriber is the tracing acceptance test: a
// producer's span, herald's two attempts (the first answered 500) and the
// subscriber's two server spans form one trace in Jaeger, with the right
// parents and a link between the attempts; an event without traceparent
// gets a root trace of its own; /metrics and the delivery logs agree.
func TestTraceFromProducerToSubscriber(t *testing.T) {
	jaeger, otlp := os.Getenv(envJaeger), os.Getenv(envOTLP)
	if jaeger == "" || otlp == "" {
		t.Skipf("%s and %s are not set (deploy/local/jaeger.sh start)", envJaeger, envOTLP)
	}
	// herald's own telemetry, set up by app.Run from the standard variables.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "herald")
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")

	producerTP := exportingProvider(t, otlp, "e2e-producer")
	subscriberTP := exportingProvider(t, otlp, "e2e-subscriber")
	defer func() { _ = subscriberTP.Shutdown(context.Background()) }()
	defer func() { _ = producerTP.Shutdown(context.Background()) }()
	sub := newSubscriber(subscriberTP)
	defer sub.srv.Close()

	brokers := testkit.Kafka(t)
	name := testkit.Topic(t, "tr")
	source := name + "-orders"
	testkit.CreateTopic(t, brokers, source, 1)
	cfg := heraldConfig(t, brokers, name, source)

	core, logs := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *app.App, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, app.Options{Logger: zap.New(core), OnReady: func(a *app.App) { ready <- a }})
	}()
	var h *app.App
	select {
	case h = <-ready:
	case err := <-done:
		t.Fatalf("herald stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("herald not ready after 60s")
	}
	s, _, err := h.Subscriptions().Create(ctx, &subscription.Subscription{URL: sub.srv.URL + "/hook", Topics: []string{source}})
	if err != nil {
		t.Fatal(err)
	}

	// The producer: one event inside its span with traceparent injected, one
	// without any trace context.
	cl := testkit.Client(t, brokers, kgo.DefaultProduceTopic(source))
	pctx, pspan := producerTP.Tracer("e2e").Start(ctx, "publish "+source, trace.WithSpanKind(trace.SpanKindProducer))
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(pctx, carrier)
	testkit.Produce(t, cl, &kgo.Record{
		Value:   []byte(`{"type":"order.created","id":1}`),
		Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("evt-traced")}, {Key: "traceparent", Value: []byte(carrier["traceparent"])}},
	}, &kgo.Record{
		Value:   []byte(`{"type":"order.created","id":2}`),
		Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("evt-untraced")}},
	})
	pspan.End()
	traceID := pspan.SpanContext().TraceID().String()

	traced, untraced := event.DeliveryID("evt-traced", s.ID), event.DeliveryID("evt-untraced", s.ID)
	testkit.Eventually(t, 60*time.Second, func() bool {
		return len(sub.requests(traced)) >= 2 && len(sub.requests(untraced)) >= 2
	}, "both events delivered on their second attempt")

	// /metrics, scraped before herald stops.
	testkit.Eventually(t, 10*time.Second, func() bool {
		m := scrapeURL(t, "http://"+h.Addr()+"/metrics")
		return m[`herald_deliveries_total{outcome="delivered",subscription="`+s.ID+`"}`] == 2 &&
			m[`herald_deliveries_total{outcome="failed",subscription="`+s.ID+`"}`] == 2
	}, "/metrics counts 2 delivered and 2 failed attempts")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("herald returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("herald did not stop within 60s")
	}

	// The traced event: one trace, from the producer to the subscriber.
	var tr jaegerTrace
	testkit.Eventually(t, 30*time.Second, func() bool {
		tr = fetchTrace(t, jaeger, traceID)
		return len(tr.named("process "+source)) == 2 && len(tr.kind("client")) == 2 && len(tr.kind("server")) == 2
	}, "trace %s complete in Jaeger", traceID)
	t.Logf("trace %s:%s", traceID, tr)
	producer := tr.named("publish " + source)
	if len(producer) != 1 || tr.service(producer[0]) != "e2e-producer" {
		t.Fatalf("producer span missing from trace %s: %s", traceID, tr)
	}
	attempts := map[int64]jaegerSpan{}
	for _, p := range tr.named("process " + source) {
		if tr.service(p) != "herald" || p.tag("span.kind") != "consumer" {
			t.Errorf("process span %s: service %q kind %v", p.SpanID, tr.service(p), p.tag("span.kind"))
		}
		if p.parent() != producer[0].SpanID {
			t.Errorf("attempt %v's parent is %q, want the producer span %s", p.tag("herald.attempt"), p.parent(), producer[0].SpanID)
		}
		if p.tag("herald.delivery.id") != traced {
			t.Errorf("process span of delivery %v, want %s", p.tag("herald.delivery.id"), traced)
		}
		n, _ := p.tag("herald.attempt").(float64)
		attempts[int64(n)] = p
	}
	first, second := attempts[1], attempts[2]
	if first.SpanID == "" || second.SpanID == "" {
		t.Fatalf("attempts %v, want 1 and 2", attempts)
	}
	if !second.follows(first.SpanID) {
		t.Errorf("attempt 2 does not link to attempt 1: references %+v", second.References)
	}
	statusOf := map[string]float64{} // process span → HTTP status of its client span
	clients := map[string]bool{}
	for _, c := range tr.kind("client") {
		if tr.service(c) != "herald" {
			t.Errorf("client span %s from service %q", c.SpanID, tr.service(c))
		}
		status, _ := c.tag("http.response.status_code").(float64)
		statusOf[c.parent()] = status
		clients[c.SpanID] = true
	}
	if statusOf[first.SpanID] != 500 || statusOf[second.SpanID] != 200 {
		t.Errorf("HTTP client spans under attempts 1 and 2 have statuses %v, %v; want 500, 200",
			statusOf[first.SpanID], statusOf[second.SpanID])
	}
	for _, srv := range tr.kind("server") {
		if tr.service(srv) != "e2e-subscriber" || !clients[srv.parent()] {
			t.Errorf("server span %s of %q has parent %s, want one of herald's client spans", srv.SpanID, tr.service(srv), srv.parent())
		}
	}

	// The event without traceparent: its first attempt is a root of its own.
	reqs := sub.requests(untraced)
	firstTrace, secondTrace := traceIDOf(reqs[0]), traceIDOf(reqs[1])
	if firstTrace == "" || firstTrace == traceID {
		t.Fatalf("untraced event's first request has traceparent %q", reqs[0])
	}
	var root jaegerTrace
	testkit.Eventually(t, 30*time.Second, func() bool {
		root = fetchTrace(t, jaeger, firstTrace)
		return len(root.kind("client")) >= 1
	}, "trace %s of the untraced event in Jaeger", firstTrace)
	var rootAttempt jaegerSpan
	for _, p := range root.named("process " + source) {
		if n, _ := p.tag("herald.attempt").(float64); n == 1 {
			rootAttempt = p
		}
	}
	if rootAttempt.SpanID == "" || rootAttempt.parent() != "" {
		t.Errorf("untraced event's first attempt %+v, want a root span", rootAttempt)
	}
	later := root
	if secondTrace != firstTrace {
		later = fetchTrace(t, jaeger, secondTrace)
	}
	var joined bool
	for _, p := range later.named("process " + source) {
		if n, _ := p.tag("herald.attempt").(float64); n == 2 {
			joined = p.parent() == rootAttempt.SpanID || p.follows(rootAttempt.SpanID)
		}
	}
	if !joined {
		t.Errorf("the untraced event's second attempt is neither a child of nor linked to its first (%s)", later)
	}

	// Delivery logs carry the trace.
	var lines int
	for _, e := range logs.All() {
		f := e.ContextMap()
		if f["delivery_id"] != traced {
			continue
		}
		lines++
		if f["trace_id"] != traceID || f["span_id"] == nil || f["subscription_id"] != s.ID {
			t.Errorf("log line %q of the traced delivery has fields %v", e.Message, f)
		}
	}
	if lines == 0 {
		t.Error("no log line for the traced delivery")
	}
}

func heraldConfig(t *testing.T, brokers []string, name, source string) config.Config {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Group = name + "-group"
	cfg.Kafka.RetryGroup = name + "-retry"
	cfg.Redis.URL = testkit.Redis(t)
	cfg.Sources = []config.Source{{Topic: source}}
	cfg.Secrets.MasterKey = base64.StdEncoding.EncodeToString(key)
	cfg.API.Tokens = []string{"test-token-0123456789abcdef"}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Delivery.AllowPrivateNetworks = true
	cfg.Topics.Prefix = name + "."
	cfg.Topics.Partitions = 1
	cfg.Retry.Tiers = config.Durations{200 * time.Millisecond, 500 * time.Millisecond, time.Second}
	return cfg
}

// noKeepAlive leaves no idle connection behind for goleak to find.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

func traceIDOf(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}

// scrapeURL returns every sample of a Prometheus endpoint by its series,
// name{label="value",…} with labels in the exposition's order.
func scrapeURL(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := noKeepAlive.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

// jaegerTrace is one trace as Jaeger's query API (/api/traces/{id}) gives it.
type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) tag(key string) any {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return nil
}

// parent is the span this one is a child of, "" for a root.
func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// follows says whether s links to span id (Jaeger shows OTel links as
// FOLLOWS_FROM references).
func (s jaegerSpan) follows(id string) bool {
	for _, r := range s.References {
		if r.RefType == "FOLLOWS_FROM" && r.SpanID == id {
			return true
		}
	}
	return false
}

func (tr jaegerTrace) service(s jaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }

func (tr jaegerTrace) named(op string) []jaegerSpan {
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if s.OperationName == op {
			out = append(out, s)
		}
	}
	return out
}

func (tr jaegerTrace) kind(kind string) []jaegerSpan {
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if s.tag("span.kind") == kind {
			out = append(out, s)
		}
	}
	return out
}

func (tr jaegerTrace) String() string {
	var b strings.Builder
	for _, s := range tr.Spans {
		fmt.Fprintf(&b, "\n  %s %s [%s] %v parent=%s", s.SpanID, s.OperationName, tr.service(s), s.tag("span.kind"), s.parent())
	}
	return b.String()
}

// fetchTrace asks Jaeger for one trace; an empty trace while it is not
// there yet.
func fetchTrace(t *testing.T, jaeger, traceID string) jaegerTrace {
	t.Helper()
	resp, err := noKeepAlive.Get(strings.TrimRight(jaeger, "/") + "/api/traces/" + traceID)
	if err != nil {
		t.Fatalf("querying Jaeger: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return jaegerTrace{}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Jaeger answered %s: %s", resp.Status, body)
	}
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("Jaeger's answer is not a trace list: %v: %s", err, body)
	}
	if len(out.Data) > 1 {
		t.Fatalf("Jaeger returned %d traces for id %s", len(out.Data), traceID)
	}
	if len(out.Data) == 0 {
		return jaegerTrace{}
	}
	return out.Data[0]
}
