package retry

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
)

const (
	producerTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	spanTrace     = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

func testJob() *dispatch.Job {
	ev := &event.Event{
		ID:          "evt_1",
		Type:        "order.created",
		Time:        time.UnixMilli(1700000000123),
		Topic:       "orders",
		Partition:   3,
		Offset:      42,
		Key:         []byte("order-7"),
		Value:       []byte(`{"id":7,"type":"order.created"}`),
		ContentType: "application/json",
		TraceParent: producerTrace,
		Headers: []kgo.RecordHeader{
			{Key: "ce_id", Value: []byte("evt_1")},
			{Key: "traceparent", Value: []byte(producerTrace)},
			{Key: "ce_type", Value: []byte("order.created")},
			{Key: "content-type", Value: []byte("application/json")},
		},
	}
	return &dispatch.Job{
		Event:        ev,
		Subscription: &subscription.Subscription{ID: "sub_1"},
		DeliveryID:   event.DeliveryID("evt_1", "sub_1"),
		Attempt:      1,
	}
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func headerList(r *kgo.Record) []string {
	out := make([]string, len(r.Headers))
	for i, h := range r.Headers {
		out[i] = h.Key + "=" + string(h.Value)
	}
	return out
}

func checkHeaders(t *testing.T, r *kgo.Record, want []string) {
	t.Helper()
	got := headerList(r)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("headers:\n got  %q\n want %q", got, want)
	}
}

func TestPlan(t *testing.T) {
	s := defaultSchedule(t)
	for _, tc := range []struct {
		name        string
		attempt     int
		r           dispatch.Retry
		tier        time.Duration
		nextAttempt int
	}{
		{"first failure", 1, dispatch.Retry{}, 10 * time.Second, 2},
		{"second failure", 2, dispatch.Retry{}, time.Minute, 3},
		{"past the list", 7, dispatch.Retry{}, 6 * time.Hour, 8},
		{"retry-after below the schedule", 3, dispatch.Retry{After: 2 * time.Second}, 10 * time.Minute, 4},
		{"retry-after above the schedule", 1, dispatch.Retry{After: 2 * time.Minute}, 10 * time.Minute, 2},
		{"retry-after beyond every tier", 1, dispatch.Retry{After: 100 * time.Hour}, 6 * time.Hour, 2},
		{"retry-after in the past", 1, dispatch.Retry{After: -time.Minute}, 10 * time.Second, 2},
		{"park keeps the attempt", 4, dispatch.Retry{Park: true}, 10 * time.Second, 4},
		{"park with retry-after 2s", 1, dispatch.Retry{Park: true, After: 2 * time.Second}, 10 * time.Second, 1},
		{"park with retry-after 30s", 2, dispatch.Retry{Park: true, After: 30 * time.Second}, time.Minute, 2},
	} {
		tier, attempt := plan(s, tc.attempt, tc.r)
		if tier != tc.tier || attempt != tc.nextAttempt {
			t.Errorf("%s: plan = %v attempt %d, want %v attempt %d", tc.name, tier, attempt, tc.tier, tc.nextAttempt)
		}
	}
}

func TestProducerRetryHeaders(t *testing.T) {
	addrs := kafka(t)
	cl := newClient(t, addrs)
	s := defaultSchedule(t)
	ensureTopics(t, cl, s, 1)
	now := time.UnixMilli(1700000100000)
	p := NewProducer(cl, s, WithClock(func() time.Time { return now }), WithJitter(func() float64 { return 0.5 }))
	ctx := testContext(t)

	j := testJob()
	attempted := now.Add(-time.Second)
	if err := p.Retry(ctx, j, dispatch.Retry{LastStatus: 500, LastError: "server error", AttemptedAt: attempted}); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, addrs, "herald.retry.10s")
	if len(recs) != 1 {
		t.Fatalf("got %d records in herald.retry.10s", len(recs))
	}
	r := recs[0]
	if string(r.Key) != "sub_1" || string(r.Value) != string(j.Event.Value) {
		t.Errorf("key %q value %q: want the subscription id and the event unchanged", r.Key, r.Value)
	}
	checkHeaders(t, r, []string{
		"herald-delivery-id=" + j.DeliveryID,
		"herald-event-id=evt_1",
		"herald-event-type=order.created",
		"herald-event-time=1700000000123",
		"herald-event-key=order-7",
		"herald-content-type=application/json",
		"herald-subscription-id=sub_1",
		"herald-attempt=2",
		"herald-due-at=" + ms(now.Add(10500*time.Millisecond)),
		"herald-first-attempt-at=" + ms(attempted),
		"herald-source=orders/3/42",
		"herald-last-status=500",
		"herald-last-error=server error",
		"traceparent=" + producerTrace,
		"herald-origin-traceparent=" + producerTrace,
		"ce_id=evt_1",
		"ce_type=order.created",
		"content-type=application/json",
	})
}

// A later hop: the traceparent is the failed attempt's span, the origin is
// kept, a parked job keeps its attempt, a long error is cut at 1 KiB.
func TestProducerParkFromTier(t *testing.T) {
	addrs := kafka(t)
	cl := newClient(t, addrs)
	s := defaultSchedule(t)
	ensureTopics(t, cl, s, 1)
	now := time.UnixMilli(1700000200000)
	p := NewProducer(cl, s, WithClock(func() time.Time { return now }), WithJitter(nil))

	j := testJob()
	j.Attempt = 3
	j.Tier = "1m"
	j.FirstAttemptAt = time.UnixMilli(1700000000999)
	j.OriginTraceParent = producerTrace
	j.Event.TraceParent = "00-11111111111111111111111111111111-2222222222222222-01"
	j.Replay = true
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    mustTraceID(t, "0af7651916cd43dd8448eb211c80319c"),
		SpanID:     mustSpanID(t, "b7ad6b7169203331"),
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(testContext(t), sc)
	long := strings.Repeat("é", 600) // 1200 bytes
	if err := p.Retry(ctx, j, dispatch.Retry{Park: true, After: 45 * time.Second, LastError: long}); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, addrs, "herald.retry.1m")
	if len(recs) != 1 {
		t.Fatalf("got %d records in herald.retry.1m", len(recs))
	}
	checkHeaders(t, recs[0], []string{
		"herald-delivery-id=" + j.DeliveryID,
		"herald-event-id=evt_1",
		"herald-event-type=order.created",
		"herald-event-time=1700000000123",
		"herald-event-key=order-7",
		"herald-content-type=application/json",
		"herald-subscription-id=sub_1",
		"herald-attempt=3",
		"herald-due-at=" + ms(now.Add(time.Minute)),
		"herald-first-attempt-at=1700000000999",
		"herald-source=orders/3/42",
		"herald-last-status=0",
		"herald-last-error=" + strings.Repeat("é", 512),
		"traceparent=" + spanTrace,
		"herald-origin-traceparent=" + producerTrace,
		"herald-replay=true",
		"ce_id=evt_1",
		"ce_type=order.created",
		"content-type=application/json",
	})
}

func TestProducerDeadLetter(t *testing.T) {
	addrs := kafka(t)
	cl := newClient(t, addrs)
	s := defaultSchedule(t)
	ensureTopics(t, cl, s, 1)
	now := time.UnixMilli(1700000300000)
	p := NewProducer(cl, s, WithClock(func() time.Time { return now }))

	j := testJob()
	j.Attempt = 10
	j.Tier = "6h"
	j.FirstAttemptAt = time.UnixMilli(1700000000999)
	j.OriginTraceParent = producerTrace
	last := now.Add(-2 * time.Second)
	err := p.DeadLetter(testContext(t), j, dispatch.DeadLetter{Reason: "attempts_exhausted", LastStatus: 503, LastError: "unavailable", AttemptedAt: last})
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, addrs, "herald.dlq")
	if len(recs) != 1 {
		t.Fatalf("got %d records in herald.dlq", len(recs))
	}
	checkHeaders(t, recs[0], []string{
		"herald-delivery-id=" + j.DeliveryID,
		"herald-event-id=evt_1",
		"herald-event-type=order.created",
		"herald-event-time=1700000000123",
		"herald-event-key=order-7",
		"herald-content-type=application/json",
		"herald-subscription-id=sub_1",
		"herald-attempt=10",
		"herald-first-attempt-at=1700000000999",
		"herald-source=orders/3/42",
		"herald-last-status=503",
		"herald-last-error=unavailable",
		"traceparent=" + producerTrace,
		"herald-origin-traceparent=" + producerTrace,
		"herald-dlq-reason=attempts_exhausted",
		"herald-attempts=10",
		"herald-last-attempt-at=" + ms(last),
		"ce_id=evt_1",
		"ce_type=order.created",
		"content-type=application/json",
	})
	h, err := ParseHeaders(recs[0].Headers)
	if err != nil {
		t.Fatal(err)
	}
	if h.Attempts != 10 || h.DLQReason != "attempts_exhausted" || !h.LastAttemptAt.Equal(time.UnixMilli(last.UnixMilli())) || len(h.Original) != 3 {
		t.Errorf("parsed dead letter = %+v", h)
	}
}

func TestEnsureTopics(t *testing.T) {
	addrs := kafka(t)
	adm := kadm.NewClient(newClient(t, addrs))
	ctx := testContext(t)
	tiers := []time.Duration{500 * time.Millisecond, 24 * time.Hour}

	err := CheckTopics(ctx, adm, "herald.", tiers)
	if err == nil || !strings.Contains(err.Error(), "herald.dlq, herald.retry.24h, herald.retry.500ms are missing") {
		t.Fatalf("CheckTopics before creation = %v", err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := EnsureTopics(ctx, adm, "herald.", tiers, 3); err != nil {
			t.Fatalf("EnsureTopics #%d: %v", i+1, err)
		}
	}
	if err := CheckTopics(ctx, adm, "herald.", tiers); err != nil {
		t.Fatalf("CheckTopics after creation: %v", err)
	}
	details, err := adm.ListTopics(ctx, "herald.retry.500ms")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["herald.retry.500ms"].Partitions); n != 3 {
		t.Errorf("herald.retry.500ms has %d partitions, want 3", n)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, "herald.retry.500ms", "herald.retry.24h", "herald.dlq")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"herald.retry.500ms": strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10),
		"herald.retry.24h":   strconv.FormatInt((240 * time.Hour).Milliseconds(), 10),
		"herald.dlq":         strconv.FormatInt((30 * 24 * time.Hour).Milliseconds(), 10),
	}
	for _, rc := range configs {
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.MaybeValue() != want[rc.Name] {
				t.Errorf("%s retention.ms = %s, want %s", rc.Name, c.MaybeValue(), want[rc.Name])
			}
			if c.Key == "cleanup.policy" && c.MaybeValue() != "delete" {
				t.Errorf("%s cleanup.policy = %s", rc.Name, c.MaybeValue())
			}
		}
	}
}

func mustTraceID(t *testing.T, s string) trace.TraceID {
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSpanID(t *testing.T, s string) trace.SpanID {
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var _ = context.Background
