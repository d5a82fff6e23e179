package event

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func rec(value string, headers ...string) *kgo.Record {
	r := &kgo.Record{Topic: "orders", Partition: 3, Offset: 42, Value: []byte(value), Timestamp: time.Unix(1700000000, 0)}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
	}
	return r
}

func TestFromRecordIdentity(t *testing.T) {
	tests := []struct {
		name     string
		x        Extractor
		r        *kgo.Record
		id, typ  string
		wantTime time.Time
	}{
		{"cloudevents headers win", Extractor{IDField: "id"}, rec(`{"id":"j1","type":"order.paid"}`, "ce_id", "ce-1", "ce_type", "order.created"), "ce-1", "order.created", time.Unix(1700000000, 0)},
		{"configured header", Extractor{IDHeader: "event-id", TypeHeader: "event-type"}, rec(`{}`, "event-id", "h-1", "event-type", "order.shipped"), "h-1", "order.shipped", time.Unix(1700000000, 0)},
		{"json fields", Extractor{IDField: "id"}, rec(`{"id":"j-1","type":"order.paid"}`), "j-1", "order.paid", time.Unix(1700000000, 0)},
		{"numeric json id", Extractor{IDField: "id"}, rec(`{"id":17,"type":"order.paid"}`), "17", "order.paid", time.Unix(1700000000, 0)},
		{"custom type field", Extractor{TypeField: "kind"}, rec(`{"kind":"payment.failed","type":"x"}`), "orders/3/42", "payment.failed", time.Unix(1700000000, 0)},
		{"fallbacks for non-JSON", Extractor{IDField: "id"}, rec("not json"), "orders/3/42", "orders", time.Unix(1700000000, 0)},
		{"fallbacks for empty value", Extractor{}, rec(""), "orders/3/42", "orders", time.Unix(1700000000, 0)},
		{"type not a string", Extractor{}, rec(`{"type":{"nested":true}}`), "orders/3/42", "orders", time.Unix(1700000000, 0)},
		{"escaped json strings", Extractor{IDField: "id"}, rec(`{"id":"a\u0062c","type":"order\/paid"}`), "abc", "order/paid", time.Unix(1700000000, 0)},
		{"fields after nested values", Extractor{IDField: "id"}, rec(`{"data":{"id":"inner","type":"inner"},"list":[{"type":"x"}],"type":"outer.t","id":1.5e3}`), "1.5e3", "outer.t", time.Unix(1700000000, 0)},
		{"first of duplicate keys", Extractor{IDField: "id"}, rec(`{"id":"first","id":"second"}`), "first", "orders", time.Unix(1700000000, 0)},
		{"truncated json falls back", Extractor{IDField: "id"}, rec(`{"id":"j-1","type":"order.paid"`), "orders/3/42", "orders", time.Unix(1700000000, 0)},
		{"json array falls back", Extractor{IDField: "id"}, rec(`[{"id":"j-1"}]`), "orders/3/42", "orders", time.Unix(1700000000, 0)},
		{"ce_time", Extractor{}, rec(`{}`, "ce_time", "2024-05-01T10:00:00Z"), "orders/3/42", "orders", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.x.FromRecord(tt.r)
			if err != nil {
				t.Fatalf("FromRecord: %v", err)
			}
			if ev.ID != tt.id || ev.Type != tt.typ {
				t.Fatalf("got id %q type %q, want %q %q", ev.ID, ev.Type, tt.id, tt.typ)
			}
			if !ev.Time.Equal(tt.wantTime) {
				t.Fatalf("time %v, want %v", ev.Time, tt.wantTime)
			}
			if ev.Source() != "orders/3/42" {
				t.Fatalf("source %q", ev.Source())
			}
		})
	}
}

func TestFromRecordTraceAndContentType(t *testing.T) {
	var x Extractor
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev, err := x.FromRecord(rec(`{}`, "traceparent", tp, "content-type", "application/cloudevents+json"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.TraceParent != tp || ev.ContentType != "application/cloudevents+json" {
		t.Fatalf("traceparent %q content type %q", ev.TraceParent, ev.ContentType)
	}
}

func TestFromRecordRejections(t *testing.T) {
	many := make([]string, 0, 600)
	for i := 0; i < 300; i++ {
		many = append(many, "h", "v")
	}
	tests := []struct {
		name   string
		x      Extractor
		r      *kgo.Record
		reason string
	}{
		{"oversized value", Extractor{MaxValueBytes: 10}, rec(`{"type":"order.created","x":1}`), "over the limit"},
		{"too many headers", Extractor{}, rec(`{}`, many...), "headers"},
		{"oversized header", Extractor{}, rec(`{}`, "big", strings.Repeat("x", 9000)), "header"},
		{"invalid utf-8 header key", Extractor{}, rec(`{}`, "\xff\xfe", "v"), "UTF-8"},
		{"invalid utf-8 type", Extractor{}, rec(`{}`, "ce_type", "\xff"), "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.x.FromRecord(tt.r)
			var rej *Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("want a *Rejection, got %v", err)
			}
			if !strings.Contains(rej.Reason, tt.reason) {
				t.Fatalf("reason %q does not mention %q", rej.Reason, tt.reason)
			}
			if ev.ID == "" || ev.Type == "" {
				t.Fatalf("a rejected event still carries its identity, got %+v", ev)
			}
		})
	}
}

func TestDeliveryID(t *testing.T) {
	a := DeliveryID("evt_1", "sub_a")
	if a != DeliveryID("evt_1", "sub_a") {
		t.Fatal("delivery id is not deterministic")
	}
	if !strings.HasPrefix(a, "msg_") || len(a) != len("msg_")+26 {
		t.Fatalf("bad shape %q", a)
	}
	if strings.ToLower(a) != a {
		t.Fatalf("not lower case: %q", a)
	}
	if a == DeliveryID("evt_1", "sub_b") || a == DeliveryID("evt_2", "sub_a") {
		t.Fatal("different inputs gave the same id")
	}
	// The separator keeps ("ab","c") and ("a","bc") apart.
	if DeliveryID("ab", "c") == DeliveryID("a", "bc") {
		t.Fatal("ambiguous concatenation")
	}
	// Pinned value, computed independently as
	// "msg_" + base32(sha256("orders/0/0\nsub_x")).lower()[:26]: the id is a
	// contract with receivers and must never change.
	if got, want := DeliveryID("orders/0/0", "sub_x"), "msg_mddwscju3uahkjxl4qvwpl4eoe"; got != want {
		t.Fatalf("DeliveryID = %q, want %q", got, want)
	}
}

func FuzzFromRecord(f *testing.F) {
	f.Add([]byte(`{"id":"1","type":"order.created"}`), "ce_id", "x")
	f.Add([]byte("\xff\x00"), "ce_type", "\xff")
	f.Add([]byte(`{"type":[`), "traceparent", "00-")
	f.Fuzz(func(t *testing.T, value []byte, hk, hv string) {
		x := Extractor{IDField: "id"}
		r := &kgo.Record{Topic: "t", Value: value, Headers: []kgo.RecordHeader{{Key: hk, Value: []byte(hv)}}}
		ev, err := x.FromRecord(r)
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("identity must never be empty: %+v (err %v)", ev, err)
		}
		if err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("unexpected error type %T", err)
			}
		}
	})
}
