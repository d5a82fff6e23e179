package dlq

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/retry"
)

var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// deadLetters writes six entries one minute apart over two partitions:
// e0..e4 well-formed (e1 and e4 for sub_2), e5 with a corrupt attempt count.
func deadLetters(t *testing.T, cl *kgo.Client) {
	t.Helper()
	var recs []*kgo.Record
	for i := 0; i < 6; i++ {
		sub := "sub_1"
		if i == 1 || i == 4 {
			sub = "sub_2"
		}
		h := retry.Headers{
			DeliveryID:        fmt.Sprintf("e%d", i),
			EventID:           fmt.Sprintf("evt_%d", i),
			EventType:         "order.created",
			EventTime:         base.Add(-time.Hour),
			ContentType:       "application/json",
			SubscriptionID:    sub,
			Attempt:           10,
			FirstAttemptAt:    base.Add(-30 * time.Minute),
			Source:            "orders/1/" + strconv.Itoa(100+i),
			LastStatus:        503,
			LastError:         "unavailable",
			OriginTraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			DLQReason:         "attempts_exhausted",
			Attempts:          10,
			LastAttemptAt:     base.Add(time.Duration(i)*time.Minute - time.Second),
			Original:          []kgo.RecordHeader{{Key: "ce_id", Value: []byte(fmt.Sprintf("evt_%d", i))}},
		}
		hs := h.Encode()
		if i == 5 {
			for j := range hs {
				if hs[j].Key == retry.HeaderAttempt {
					hs[j].Value = []byte("x")
				}
			}
		}
		recs = append(recs, &kgo.Record{
			Topic:     "herald.dlq",
			Partition: int32(i % 2),
			Key:       []byte(sub),
			Value:     []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Headers:   hs,
			Timestamp: base.Add(time.Duration(i) * time.Minute),
		})
	}
	if err := cl.ProduceSync(testContext(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func deliveryIDs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.DeliveryID
	}
	return out
}

func TestList(t *testing.T) {
	addrs, cl, _ := setup(t)
	deadLetters(t, cl)
	reader := newClient(t, addrs)

	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"everything", Filter{}, []string{"e0", "e1", "e2", "e3", "e4", "e5"}},
		{"subscription", Filter{SubscriptionID: "sub_1"}, []string{"e0", "e2", "e3", "e5"}},
		{"since", Filter{Since: base.Add(2 * time.Minute)}, []string{"e2", "e3", "e4", "e5"}},
		{"until is exclusive", Filter{Until: base.Add(3 * time.Minute)}, []string{"e0", "e1", "e2"}},
		{"since and until", Filter{Since: base.Add(time.Minute), Until: base.Add(4 * time.Minute)}, []string{"e1", "e2", "e3"}},
		{"ids", Filter{IDs: []string{"e4", "e1", "nope"}}, []string{"e1", "e4"}},
		{"limit keeps the oldest", Filter{Limit: 2}, []string{"e0", "e1"}},
		{"limit after the other filters", Filter{SubscriptionID: "sub_1", Limit: 2}, []string{"e0", "e2"}},
		{"nothing", Filter{SubscriptionID: "sub_9"}, []string{}},
		{"since after everything", Filter{Since: base.Add(time.Hour)}, []string{}},
	} {
		got, err := List(testContext(t), reader, "herald.dlq", tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if g := deliveryIDs(got); !slices.Equal(g, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, g, tc.want)
		}
	}

	got, err := List(testContext(t), reader, "herald.dlq", Filter{IDs: []string{"e3", "e5"}})
	if err != nil {
		t.Fatal(err)
	}
	e := got[0]
	want := Entry{
		DeliveryID: "e3", EventID: "evt_3", EventType: "order.created", SubscriptionID: "sub_1",
		Reason: "attempts_exhausted", LastStatus: 503, LastError: "unavailable", Attempts: 10,
		FirstAttemptAt: base.Add(-30 * time.Minute), LastAttemptAt: base.Add(3*time.Minute - time.Second),
		Source: "orders/1/103", Partition: 1, Offset: 1, Timestamp: base.Add(3 * time.Minute),
	}
	if e.DeliveryID != want.DeliveryID || e.EventID != want.EventID || e.EventType != want.EventType ||
		e.SubscriptionID != want.SubscriptionID || e.Reason != want.Reason || e.LastStatus != want.LastStatus ||
		e.LastError != want.LastError || e.Attempts != want.Attempts || !e.FirstAttemptAt.Equal(want.FirstAttemptAt) ||
		!e.LastAttemptAt.Equal(want.LastAttemptAt) || e.Source != want.Source || e.Partition != want.Partition ||
		e.Offset != want.Offset || !e.Timestamp.Equal(want.Timestamp) || string(e.Value) != `{"n":3}` || e.Corrupt != "" {
		t.Errorf("entry:\n got  %+v\n want %+v", e, want)
	}
	if c := got[1].Corrupt; c != `herald-attempt "x" is not a count` {
		t.Errorf("corrupt entry says %q", c)
	}

	if _, err := List(testContext(t), reader, "herald.nope", Filter{}); err == nil {
		t.Error("List of a missing topic succeeded")
	}
}

func TestReplay(t *testing.T) {
	addrs, cl, p := setup(t)
	deadLetters(t, cl)
	reader := newClient(t, addrs)

	before := time.Now()
	n, err := Replay(testContext(t), reader, Filter{SubscriptionID: "sub_1"}, p)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if n != 3 { // e0, e2, e3; the corrupt e5 is skipped
		t.Fatalf("replayed %d, want 3", n)
	}
	recs := readAll(t, addrs, "herald.retry.200ms")
	var got []string
	for _, r := range recs {
		h, err := retry.ParseHeaders(r.Headers)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.CheckRetry(); err != nil {
			t.Errorf("%s: not a valid retry record: %v", h.DeliveryID, err)
		}
		got = append(got, h.DeliveryID)
		i := h.DeliveryID[1:]
		due := h.DueAt
		switch {
		case h.Attempt != 1, !h.Replay, due.Before(before.Truncate(time.Millisecond)), due.After(after),
			h.EventID != "evt_"+i, h.SubscriptionID != "sub_1", h.Source != "orders/1/10"+i,
			h.LastStatus != 503, h.LastError != "unavailable", !h.FirstAttemptAt.Equal(base.Add(-30 * time.Minute)),
			h.OriginTraceParent == "", h.ContentType != "application/json":
			t.Errorf("replayed headers = %+v", h)
		}
		for _, k := range []string{retry.HeaderDLQReason, retry.HeaderAttempts, retry.HeaderLastAttemptAt} {
			if v, ok := header(r, k); ok {
				t.Errorf("%s kept %s=%s", h.DeliveryID, k, v)
			}
		}
		if ce, _ := header(r, "ce_id"); ce != "evt_"+i || string(r.Key) != "sub_1" || string(r.Value) != `{"n":`+i+`}` {
			t.Errorf("%s: key %q value %q ce_id %q", h.DeliveryID, r.Key, r.Value, ce)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"e0", "e2", "e3"}) {
		t.Errorf("replayed %v", got)
	}

	n, err = Replay(testContext(t), reader, Filter{IDs: []string{"e4"}}, p)
	if err != nil || n != 1 {
		t.Fatalf("replay by id = %d, %v", n, err)
	}
}
