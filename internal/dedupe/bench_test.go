package dedupe

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// The dispatcher acquires a batch per fetch; these show what one round trip
// per delivery would cost instead.
func BenchmarkAcquire(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			s := New(be.rdb)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.Acquire(ctx, strconv.Itoa(i), time.Minute); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/id")
		})
	}
}

func BenchmarkAcquireMany100(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			s := New(be.rdb)
			ctx := context.Background()
			ids := make([]string, 100)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for j := range ids {
					ids[j] = strconv.Itoa(n)
					n++
				}
				if _, err := s.AcquireMany(ctx, ids, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/id")
		})
	}
}
