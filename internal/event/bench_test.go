package event

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func BenchmarkDeliveryID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		DeliveryID("orders/3/1234567", "sub_01HZX4K8Q2W6T9V3N5M7P0R1S2")
	}
}

// benchRecord is a 1 KiB JSON event without CloudEvents headers, shaped as
// the throughput benchmark's (internal/bench makeEvent).
func benchRecord() *kgo.Record {
	v := []byte(`{"type":"order.created","id":"ord_123456","sent_ns":`)
	v = strconv.AppendInt(v, time.Unix(1700000000, 0).UnixNano(), 10)
	v = append(v, `,"customer":"cus_4f9a1c","currency":"EUR","pad":"`...)
	for len(v) < 1024-2 {
		v = append(v, 'x')
	}
	v = append(v, `"}`...)
	return &kgo.Record{Topic: "orders", Partition: 3, Offset: 42, Key: []byte("ord_123456"), Value: v, Timestamp: time.Unix(1700000000, 0)}
}

func BenchmarkFromRecord(b *testing.B) {
	for _, x := range []struct {
		name string
		x    Extractor
	}{
		{"type", Extractor{}},
		{"id_and_type", Extractor{IDField: "id"}},
	} {
		b.Run(x.name, func(b *testing.B) {
			r := benchRecord()
			b.SetBytes(int64(len(r.Value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := x.x.FromRecord(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
