package outcome

import (
	"context"
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
