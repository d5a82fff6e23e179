package outcome

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-dev/herald/internal/testkit"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sample(i int) *Record {
	next := t0.Add(time.Minute)
	r := &Record{
		DeliveryID:     fmt.Sprintf("msg_%026d", i),
		EventID:        fmt.Sprintf("orders/0/%d", i),
		EventType:      "order.created",
		SubscriptionID: "sub_billing",
		Topic:          "orders",
		Partition:      0,
		Offset:         int64(i),
		Attempt:        1,
		State:          Delivered,
		HTTPStatus:     200,
		LatencyMS:      12.5,
		TraceID:        "4bf92f3577b34da6a3ce929d0e0e4736",
		AttemptedAt:    t0,
	}
	if i%2 == 1 {
		r.State, r.HTTPStatus, r.Error, r.Response = Failed, 503, "503 Service Unavailable", "try later"
		r.Tier, r.NextAttemptAt = "1m", &next
	}
	return r
}

func TestWriterRecordsDecodeKeyedByDeliveryID(t *testing.T) {
	seeds := testkit.Kafka(t)
	topic := newTopic(t, seeds)
	cl := testkit.Client(t, seeds, kgo.ProducerLinger(50*time.Millisecond))

	var mu sync.Mutex
	var hooked []*Record
	recordedAt := t0.Add(time.Second)
	w := NewWriter(cl, topic,
		WithClock(func() time.Time { return recordedAt }),
		WithHook(func(r *Record) { mu.Lock(); hooked = append(hooked, r); mu.Unlock() }))

	const n = 20
	want := make(map[string]Record, n)
	for i := range n {
		r := sample(i)
		r.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-" + r.TraceID + "-00f067aa0ba902b7-01")}}
		ctx, cancel := context.WithCancel(context.Background())
		w.Write(ctx, r)
		cancel() // the delivery's context ends; its outcome must still be written
		want[r.DeliveryID] = *r
	}
	if len(hooked) != n {
		t.Fatalf("hook called %d times during Write, want %d", len(hooked), n)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.Errors() != 0 {
		t.Fatalf("Errors() = %d", w.Errors())
	}

	for _, rec := range consume(t, seeds, topic, n) {
		var got Record
		if err := json.Unmarshal(rec.Value, &got); err != nil {
			t.Fatalf("decode %s: %v", rec.Value, err)
		}
		if string(rec.Key) != got.DeliveryID {
			t.Fatalf("key %q, delivery id %q", rec.Key, got.DeliveryID)
		}
		exp, ok := want[got.DeliveryID]
		if !ok {
			t.Fatalf("unexpected record %s", rec.Value)
		}
		if !got.RecordedAt.Equal(recordedAt) {
			t.Fatalf("recorded_at = %v, want %v", got.RecordedAt, recordedAt)
		}
		if len(rec.Headers) != 1 || rec.Headers[0].Key != "traceparent" || !strings.Contains(string(rec.Headers[0].Value), exp.TraceID) {
			t.Fatalf("headers = %v, want the traceparent", rec.Headers)
		}
		exp.Headers, got.Headers = nil, nil
		expJSON, _ := json.Marshal(exp)
		gotJSON, _ := json.Marshal(got)
		if string(expJSON) != string(gotJSON) {
			t.Fatalf("round trip:\n got %s\nwant %s", gotJSON, expJSON)
		}
		delete(want, got.DeliveryID)
	}
	if len(want) != 0 {
		t.Fatalf("%d records missing", len(want))
	}
}

// Flush must push records out of a linger that would otherwise hold them
// for a minute: it is what shutdown relies on.
func TestFlushWaitsForLingeringRecords(t *testing.T) {
	seeds := testkit.Kafka(t)
	topic := newTopic(t, seeds)
	cl := testkit.Client(t, seeds, kgo.ProducerLinger(time.Minute))
	w := NewWriter(cl, topic)

	for i := range 5 {
		w.Write(context.Background(), sample(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(consume(t, seeds, topic, 5)); got != 5 {
		t.Fatalf("consumed %d records after Flush, want 5", got)
	}
}

// A full producer buffer must cost an outcome, never a delivery's time.
func TestWriteNeverBlocksOnAFullBuffer(t *testing.T) {
	seeds := testkit.Kafka(t)
	topic := newTopic(t, seeds)
	cl := testkit.Client(t, seeds, kgo.ProducerLinger(time.Minute), kgo.MaxBufferedRecords(1))
	core, logs := observer.New(zapcore.WarnLevel)
	w := NewWriter(cl, topic, WithLogger(zap.New(core)))

	start := time.Now()
	for i := range 10 {
		w.Write(context.Background(), sample(i))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("10 writes took %v", d)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := w.Errors()
	if lost == 0 || lost > 9 {
		t.Fatalf("Errors() = %d, want the writes that found the buffer full", lost)
	}
	if logs.Len() != 1 {
		t.Fatalf("logged %d times, want once a minute", logs.Len())
	}
}

func TestWriteCountsProduceErrors(t *testing.T) {
	seeds := testkit.Kafka(t)
	topic := newTopic(t, seeds)
	cl := testkit.Client(t, seeds, kgo.ProducerBatchMaxBytes(512))
	w := NewWriter(cl, topic)

	r := sample(1)
	r.Response = strings.Repeat("x", 2000) // the record no longer fits a 512-byte batch
	w.Write(context.Background(), r)
	r2 := sample(2)
	r2.Error = strings.Repeat("y", 2000)
	w.Write(context.Background(), r2)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.Errors() != 2 {
		t.Fatalf("Errors() = %d, want 2", w.Errors())
	}
}

func TestWriteTrimsResponse(t *testing.T) {
	seeds := testkit.Kafka(t)
	cl := testkit.Client(t, seeds)
	var got *Record
	w := NewWriter(cl, "herald.outcomes.unused", WithHook(func(r *Record) { got = r }))
	cl.Close() // records fail; only the hook's view matters here

	r := sample(0)
	r.Response = strings.Repeat("é", 600) + "\xff"
	w.Write(context.Background(), r)
	if len(got.Response) > ResponseLimit || got.Response != strings.Repeat("é", 512) {
		t.Fatalf("response kept %d bytes: %q…", len(got.Response), got.Response[:10])
	}
}
