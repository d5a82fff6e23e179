package outcome

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/testkit"
)

// Write runs once per attempt on the delivery path.
func BenchmarkWrite(b *testing.B) {
	seeds := testkit.Kafka(b)
	topic := newTopic(b, seeds)
	w := NewWriter(testkit.Client(b, seeds, kgo.ProducerLinger(10*time.Millisecond)), topic)
	r := sample(1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rec := *r
		w.Write(ctx, &rec)
	}
	if err := w.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if w.Errors() != 0 {
		b.Fatalf("%d records lost", w.Errors())
	}
}

// benchRecords are the shapes Write sees most: a delivery, a failure with a
// short answer, and failures answered by a JSON or an HTML page, whose
// quotes and angle brackets AppendJSON escapes.
func benchRecords() []struct {
	name string
	r    *Record
} {
	at := time.Date(2026, 3, 1, 12, 0, 0, 950346823, time.UTC)
	next := at.Add(time.Minute)
	delivered := Record{
		DeliveryID: "msg_2bUmGRJzB8VhNq7hX4yQ1Kx9ZtC", EventID: "orders/7/123456", EventType: "order.created",
		SubscriptionID: "sub_2bUmGRJzB8VhNq7hX4yQ1Kx9ZtC", Topic: "orders", Partition: 7, Offset: 123456,
		Attempt: 1, State: Delivered, HTTPStatus: 204, LatencyMS: 41.837, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		AttemptedAt: at, RecordedAt: at.Add(42 * time.Millisecond),
	}
	failed := delivered
	failed.State, failed.HTTPStatus, failed.Tier, failed.NextAttemptAt = Failed, 503, "1m", &next
	failed.Error, failed.Response = "endpoint answered 503", "Service Unavailable"
	jsonBody, htmlBody := failed, failed
	jsonBody.Response = repeatTo(`{"error":{"code":"rate_limited","message":"too many requests for tenant 42","retry_after":30}},`, ResponseLimit)
	htmlBody.Response = repeatTo(`<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>`, ResponseLimit)
	return []struct {
		name string
		r    *Record
	}{{"delivered", &delivered}, {"failed", &failed}, {"json-1KiB", &jsonBody}, {"html-1KiB", &htmlBody}}
}

func repeatTo(unit string, n int) string { return strings.Repeat(unit, n/len(unit)+1)[:n] }

// Encode is Write's own work on a record: its key and value, ready for the
// client.
func BenchmarkEncode(b *testing.B) {
	for _, in := range benchRecords() {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = in.r.keyValue()
			}
		})
	}
}
