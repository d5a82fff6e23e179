package dispatch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
)

const (
	originTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	hopTP    = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
)

func recorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
}

func spanContext(t *testing.T, traceparent string) trace.SpanContext {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		t.Fatalf("traceparent %q is not valid", traceparent)
	}
	return sc
}

func traceparentOf(sc trace.SpanContext) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

func tracedJob(traceparent, origin, tier string, attempt int) *dispatch.Job {
	return &dispatch.Job{
		Event: &event.Event{
			ID: "evt_1", Type: "order.created", Topic: "orders", Partition: 3, Offset: 42,
			Value: []byte(`{"type":"order.created"}`), TraceParent: traceparent,
		},
		Subscription:      &subscription.Subscription{ID: "sub_1"},
		DeliveryID:        event.DeliveryID("evt_1", "sub_1"),
		Attempt:           attempt,
		OriginTraceParent: origin,
		Tier:              tier,
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func only(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	return spans[0]
}

// TestTracingRetryParentIsOriginLinkedToHop pins that a retry's span joins
// the producer's trace as a child of the producer's span, not of the attempt
// it follows, and links to that attempt instead.
func TestTracingRetryParentIsOriginLinkedToHop(t *testing.T) {
	rec, tp := recorder()
	var inner trace.SpanContext
	h := dispatch.Chain(func(ctx context.Context, j *dispatch.Job) dispatch.Result {
		inner = trace.SpanContextFromContext(ctx)
		return dispatch.Result{Step: dispatch.Delivered}
	}, dispatch.Tracing(tp, "herald", dispatch.WithRetryGroup("herald-retry")))

	// An unrelated span in the caller's context must not become the parent.
	ctx, unrelated := tp.Tracer("test").Start(context.Background(), "unrelated")
	h(ctx, tracedJob(hopTP, originTP, "10s", 2))
	unrelated.End()

	var s sdktrace.ReadOnlySpan
	for _, e := range rec.Ended() {
		if e.Name() == "process orders" {
			s = e
		}
	}
	if s == nil {
		t.Fatal("no span named \"process orders\"")
	}
	origin, hop := spanContext(t, originTP), spanContext(t, hopTP)
	if s.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kind %v, want consumer", s.SpanKind())
	}
	if s.Parent().SpanID() != origin.SpanID() || s.SpanContext().TraceID() != origin.TraceID() || !s.Parent().IsRemote() {
		t.Errorf("parent %v in trace %v, want the origin %v", s.Parent().SpanID(), s.SpanContext().TraceID(), origin.SpanID())
	}
	if links := s.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != hop.SpanID() {
		t.Errorf("links %+v, want one to the previous hop %v", links, hop.SpanID())
	}
	if inner.SpanID() != s.SpanContext().SpanID() {
		t.Errorf("the handler ran in span %v, want the process span %v", inner.SpanID(), s.SpanContext().SpanID())
	}
	want := map[attribute.Key]attribute.Value{
		"messaging.system":                   attribute.StringValue("kafka"),
		"messaging.operation.type":           attribute.StringValue("process"),
		"messaging.destination.name":         attribute.StringValue("orders"),
		"messaging.destination.partition.id": attribute.StringValue("3"),
		"messaging.kafka.offset":             attribute.Int64Value(42),
		"messaging.consumer.group.name":      attribute.StringValue("herald-retry"),
		"messaging.message.id":               attribute.StringValue("evt_1"),
		"herald.delivery.id":                 attribute.StringValue(event.DeliveryID("evt_1", "sub_1")),
		"herald.subscription.id":             attribute.StringValue("sub_1"),
		"herald.attempt":                     attribute.Int64Value(2),
		"herald.retry.tier":                  attribute.StringValue("10s"),
		"herald.outcome":                     attribute.StringValue("delivered"),
	}
	got := attrs(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k].String(), v.String())
		}
	}
	if s.Status().Code != codes.Ok {
		t.Errorf("status %v, want Ok", s.Status())
	}
}

// TestTracingFirstAttempt pins that a first attempt is a child of the
// source record's traceparent, with no link (there is no previous hop) and
// the dispatcher's group.
func TestTracingFirstAttempt(t *testing.T) {
	rec, tp := recorder()
	h := dispatch.Chain(func(context.Context, *dispatch.Job) dispatch.Result {
		return dispatch.Result{Step: dispatch.Delivered}
	}, dispatch.Tracing(tp, "herald", dispatch.WithRetryGroup("herald-retry")))
	j := tracedJob(originTP, "", "", 1) // as Source makes it, minus the origin: fall back to the event's
	h(context.Background(), j)
	s := only(t, rec)
	if s.Parent().SpanID() != spanContext(t, originTP).SpanID() {
		t.Errorf("parent %v, want the source record's span", s.Parent().SpanID())
	}
	if len(s.Links()) != 0 {
		t.Errorf("links %+v, want none", s.Links())
	}
	got := attrs(s)
	if g := got["messaging.consumer.group.name"].AsString(); g != "herald" {
		t.Errorf("group %q, want herald", g)
	}
	if _, ok := got["herald.retry.tier"]; ok {
		t.Error("a first attempt has herald.retry.tier")
	}
}

// TestTracingNewRoot pins that an event without traceparent starts a trace
// of its own and still delivers.
func TestTracingNewRoot(t *testing.T) {
	rec, tp := recorder()
	h := dispatch.Chain(func(context.Context, *dispatch.Job) dispatch.Result {
		return dispatch.Result{Step: dispatch.Delivered}
	}, dispatch.Tracing(tp, "herald"))
	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	res := h(ctx, tracedJob("", "", "", 1))
	caller.End()
	if res.Step != dispatch.Delivered {
		t.Fatalf("step %v", res.Step)
	}
	for _, s := range rec.Ended() {
		if s.Name() != "process orders" {
			continue
		}
		if s.Parent().IsValid() {
			t.Errorf("parent %v, want a new root", s.Parent().SpanID())
		}
		if s.SpanContext().TraceID() == caller.SpanContext().TraceID() {
			t.Error("the root joined the caller's trace")
		}
		return
	}
	t.Fatal("no process span")
}

// TestTracingBadTraceparent pins that an unreadable traceparent is treated
// as none: a new root, and no link to it.
func TestTracingBadTraceparent(t *testing.T) {
	rec, tp := recorder()
	h := dispatch.Chain(func(context.Context, *dispatch.Job) dispatch.Result {
		return dispatch.Result{Step: dispatch.Delivered}
	}, dispatch.Tracing(tp, "herald"))
	h(context.Background(), tracedJob("00-garbage", "not-a-traceparent", "1m", 3))
	s := only(t, rec)
	if s.Parent().IsValid() || len(s.Links()) != 0 {
		t.Errorf("parent %v links %v, want a root without links", s.Parent(), s.Links())
	}
}

func TestTracingErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		step      dispatch.Step
		err       error
		code      codes.Code
		exception bool
	}{
		{dispatch.Retried, nil, codes.Error, false},
		{dispatch.DeadLettered, nil, codes.Error, false},
		{dispatch.Abandoned, errors.New("partition revoked"), codes.Error, true},
		{dispatch.Parked, nil, codes.Unset, false},
		{dispatch.Dropped, nil, codes.Unset, false},
	} {
		t.Run(tc.step.String(), func(t *testing.T) {
			rec, tp := recorder()
			h := dispatch.Chain(func(context.Context, *dispatch.Job) dispatch.Result {
				return dispatch.Result{Step: tc.step, Err: tc.err}
			}, dispatch.Tracing(tp, "herald"))
			h(context.Background(), tracedJob(originTP, originTP, "", 1))
			s := only(t, rec)
			if s.Status().Code != tc.code {
				t.Errorf("status %v, want %v", s.Status(), tc.code)
			}
			if got := attrs(s)["herald.outcome"].AsString(); got != tc.step.String() {
				t.Errorf("herald.outcome %q, want %q", got, tc.step)
			}
			var exception bool
			for _, e := range s.Events() {
				exception = exception || e.Name == "exception"
			}
			if exception != tc.exception {
				t.Errorf("exception event %v, want %v", exception, tc.exception)
			}
		})
	}
}

// subs is a fixed set of subscriptions.
type subs map[string]*subscription.Subscription

func (s subs) Get(id string) (*subscription.Subscription, bool) { sub, ok := s[id]; return sub, ok }
func (s subs) Update(context.Context, string, int64, func(*subscription.Subscription) error) (*subscription.Subscription, error) {
	return nil, errors.New("read-only")
}

// outcomes keeps what it is given.
type outcomes struct {
	mu   sync.Mutex
	recs []*outcome.Record
}

func (o *outcomes) Write(_ context.Context, r *outcome.Record) {
	o.mu.Lock()
	o.recs = append(o.recs, r)
	o.mu.Unlock()
}

// TestTracingThroughAttempter runs real attempts through delivery.Client
// against a test server: the HTTP client span is a child of the process
// span and its context is the request's traceparent; the retry record
// written after the failed attempt carries the process span as its hop and
// the producer's context as its origin; outcome records and the delivery
// log carry the trace id.
func TestTracingThroughAttempter(t *testing.T) {
	rec, tp := recorder()
	var (
		mu       sync.Mutex
		received []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		received = append(received, r.Header.Get("traceparent"))
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()

	sched, err := retry.NewSchedule(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tierTopic := retry.TopicName(retry.DefaultPrefix, 10*time.Second)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, tierTopic, retry.DLQTopic(retry.DefaultPrefix)))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	sub := &subscription.Subscription{ID: "sub_1", URL: srv.URL, Status: subscription.StatusActive,
		Secrets: []subscription.Secret{{Key: []byte("0123456789abcdef0123456789abcdef")}}}
	outs := &outcomes{}
	core, logs := observer.New(zap.InfoLevel)
	var observed []string
	a := &dispatch.Attempter{
		Send: delivery.NewClient(delivery.AllowPrivateNetworks(true),
			delivery.WithTracerProvider(tp), delivery.WithPropagators(propagation.TraceContext{})),
		Subs:        subs{sub.ID: sub},
		Outcomes:    outs,
		Retrier:     retry.NewProducer(cl, sched),
		MaxAttempts: 3,
		Observe: dispatch.Observers(dispatch.TraceOutcome, nil, dispatch.LogOutcomes(zap.New(core)),
			func(ctx context.Context, j *dispatch.Job, r *outcome.Record) {
				dispatch.JobLogger(zap.New(core), ctx, j).Info("attempt", zap.String("state", string(r.State)))
				observed = append(observed, string(r.State))
			}),
	}
	h := dispatch.Chain(a.Handle, dispatch.Tracing(tp, "herald"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := tracedJob(originTP, originTP, "", 1)
	j.Subscription = sub
	if res := h(ctx, j); res.Step != dispatch.Retried {
		t.Fatalf("step %v (%v), want retried", res.Step, res.Err)
	}

	var process, client sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindConsumer:
			process = s
		case trace.SpanKindClient:
			client = s
		}
	}
	if process == nil || client == nil {
		t.Fatalf("spans %v, want a consumer and a client span", rec.Ended())
	}
	if client.Parent().SpanID() != process.SpanContext().SpanID() {
		t.Errorf("client span's parent %v, want the process span %v", client.Parent().SpanID(), process.SpanContext().SpanID())
	}
	if got := attrs(client)["http.response.status_code"].AsInt64(); got != 500 {
		t.Errorf("client span status code %d, want 500", got)
	}
	if len(received) != 1 || received[0] != traceparentOf(client.SpanContext()) {
		t.Errorf("request traceparent %q, want the client span's %q", received, traceparentOf(client.SpanContext()))
	}
	if process.Status().Code != codes.Error {
		t.Errorf("process span status %v, want Error", process.Status())
	}
	var outcomeEvent bool
	for _, e := range process.Events() {
		outcomeEvent = outcomeEvent || e.Name == "outcome"
	}
	if !outcomeEvent {
		t.Error("no outcome event on the process span")
	}

	// The retry record.
	rc, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(tierTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	fs := rc.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("%d retry records, want 1", len(recs))
	}
	h0, err := retry.ParseHeaders(recs[0].Headers)
	if err != nil {
		t.Fatal(err)
	}
	if want := traceparentOf(process.SpanContext()); h0.TraceParent != want {
		t.Errorf("retry record traceparent %q, want the process span %q", h0.TraceParent, want)
	}
	if h0.OriginTraceParent != originTP {
		t.Errorf("retry record origin %q, want %q", h0.OriginTraceParent, originTP)
	}

	// Outcomes and logs.
	traceID := process.SpanContext().TraceID().String()
	if len(outs.recs) == 0 {
		t.Fatal("no outcome records")
	}
	for _, r := range outs.recs {
		if r.TraceID != traceID {
			t.Errorf("outcome %s has trace id %q, want %q", r.State, r.TraceID, traceID)
		}
	}
	if len(observed) != len(outs.recs) {
		t.Errorf("observed %v, want one per outcome record (%d)", observed, len(outs.recs))
	}
	if process.SpanContext().TraceID() != spanContext(t, originTP).TraceID() {
		t.Errorf("process span in trace %v, want the producer's", process.SpanContext().TraceID())
	}
	if n := logs.FilterMessage("delivery failed").Len(); n != 1 {
		t.Errorf("%d \"delivery failed\" lines from LogOutcomes, want 1", n)
	}
	for _, e := range logs.All() {
		f := e.ContextMap()
		if f["trace_id"] != traceID || f["span_id"] != process.SpanContext().SpanID().String() ||
			f["delivery_id"] != j.DeliveryID || f["subscription_id"] != "sub_1" {
			t.Errorf("log line fields %v, want trace, span, delivery and subscription ids", f)
		}
	}
}
