package dlq

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/retry"
)

// source writes 20 events one second apart over two partitions of
// "orders", alternating order.created and order.deleted.
func source(t *testing.T, cl *kgo.Client) {
	t.Helper()
	var recs []*kgo.Record
	for i := 0; i < 20; i++ {
		typ := "order.created"
		if i%2 == 1 {
			typ = "order.deleted"
		}
		recs = append(recs, &kgo.Record{
			Topic:     "orders",
			Partition: int32(i % 2),
			Key:       []byte(fmt.Sprintf("order-%d", i)),
			Value:     []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Timestamp: base.Add(time.Duration(i) * time.Second),
			Headers: []kgo.RecordHeader{
				{Key: "ce_id", Value: []byte(fmt.Sprintf("evt_%d", i))},
				{Key: "ce_type", Value: []byte(typ)},
				{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
			},
		})
	}
	if _, err := kadm.NewClient(cl).CreateTopic(testContext(t), 2, -1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(testContext(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestBackfill(t *testing.T) {
	addrs, cl, p := setup(t)
	source(t, cl)
	reader := newClient(t, addrs)
	adm := kadm.NewClient(reader)
	created := func(ev *event.Event) bool { return ev.Type == "order.created" }

	var seen int
	for _, tc := range []struct {
		name string
		req  BackfillRequest
		want []int // event numbers
	}{
		{"since", BackfillRequest{Since: base.Add(14 * time.Second)}, []int{14, 15, 16, 17, 18, 19}},
		{"since and until", BackfillRequest{Since: base.Add(10 * time.Second), Until: base.Add(13 * time.Second)}, []int{10, 11, 12}},
		{"matching types only", BackfillRequest{Since: base.Add(15 * time.Second), Match: created}, []int{16, 18}},
		{"since after everything", BackfillRequest{Since: base.Add(time.Hour)}, nil},
	} {
		tc.req.SubscriptionID, tc.req.Topic = "sub_new", "orders"
		before := time.Now()
		n, err := Backfill(testContext(t), reader, adm, tc.req, p)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n != len(tc.want) {
			t.Errorf("%s: backfilled %d, want %d", tc.name, n, len(tc.want))
		}
		recs := readAll(t, addrs, "herald.retry.200ms")[seen:]
		seen += len(recs)
		var got []int
		for _, r := range recs {
			h, err := retry.ParseHeaders(r.Headers)
			if err != nil {
				t.Fatal(err)
			}
			var i int
			fmt.Sscanf(h.EventID, "evt_%d", &i)
			got = append(got, i)
			if err := h.CheckRetry(); err != nil || h.Attempt != 1 || h.DueAt.Before(before.Truncate(time.Millisecond)) ||
				h.DeliveryID != event.DeliveryID(h.EventID, "sub_new") || h.SubscriptionID != "sub_new" ||
				h.Source != fmt.Sprintf("orders/%d/%d", i%2, i/2) || string(h.EventKey) != fmt.Sprintf("order-%d", i) ||
				h.OriginTraceParent == "" || string(r.Value) != fmt.Sprintf(`{"n":%d}`, i) || h.Replay {
				t.Errorf("%s: record %+v (%v)", tc.name, h, err)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: backfilled events %v, want %v", tc.name, got, tc.want)
		}
	}

	if _, err := Backfill(testContext(t), reader, adm, BackfillRequest{SubscriptionID: "s", Topic: "nope", Since: base}, p); err == nil {
		t.Error("backfill of a missing topic succeeded")
	}
	if _, err := Backfill(testContext(t), reader, adm, BackfillRequest{SubscriptionID: "s", Topic: "orders", Since: base, Until: base}, p); err == nil {
		t.Error("backfill with until = since succeeded")
	}
}
