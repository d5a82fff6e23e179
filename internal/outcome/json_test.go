package outcome

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// reflected is Record without its methods: what encoding/json makes of the
// struct tags alone, the reference AppendJSON must match byte for byte.
type reflected Record

func reference(t testing.TB, r *Record) []byte {
	t.Helper()
	b, err := json.Marshal((*reflected)(r))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	next := time.Date(2026, 11, 28, 21, 0, 0, 123456789, time.UTC)
	east := time.FixedZone("east", 5*3600+30*60)
	cases := []Record{
		{},
		{
			DeliveryID: "msg_abc", EventID: "orders/0/42", EventType: "order.created",
			SubscriptionID: "sub_1", Topic: "orders", Partition: 3, Offset: 1 << 40,
			Attempt: 2, State: Failed, HTTPStatus: 503, LatencyMS: 12.345,
			Error: `endpoint answered 503: "busy" <now> & later`, Response: "line1\nline2\t\r\b\f\x00\x1f",
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Tier: "1m",
			NextAttemptAt: &next, AttemptedAt: next.In(east), RecordedAt: next,
		},
		{State: Delivered, LatencyMS: 0.000_000_5, Error: "bad utf-8: \xff\xfe end", Response: "sep\u2028para\u2029 ok é 日本"},
		{State: Delivered, LatencyMS: 1e22, Partition: -1, Offset: -2, Attempt: -3},
		{State: Delivered, LatencyMS: 123456789.125, EventType: `back\slash "quoted"`},
		{State: Delivered, LatencyMS: -0.25},
	}
	for i := range cases {
		r := &cases[i]
		want := reference(t, r)
		got := r.AppendJSON(nil)
		if !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
		viaMarshal, err := json.Marshal(r)
		if err != nil || !bytes.Equal(viaMarshal, want) {
			t.Errorf("case %d: json.Marshal = %s, %v; want %s", i, viaMarshal, err, want)
		}
	}
}

func TestAppendJSONNonFiniteLatency(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		var back map[string]any
		if err := json.Unmarshal((&Record{LatencyMS: f}).AppendJSON(nil), &back); err != nil {
			t.Fatalf("latency %v: not JSON: %v", f, err)
		}
		if back["latency_ms"] != 0.0 {
			t.Fatalf("latency %v encoded as %v, want 0", f, back["latency_ms"])
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("msg_1", "order.created", "boom <&>", "\xff\u2028", 1.5, int64(7))
	f.Fuzz(func(t *testing.T, id, typ, errText, resp string, latency float64, offset int64) {
		if math.IsNaN(latency) || math.IsInf(latency, 0) {
			return
		}
		r := &Record{DeliveryID: id, EventType: typ, Error: errText, Response: resp, LatencyMS: latency, Offset: offset, State: Failed}
		if got, want := r.AppendJSON(nil), reference(t, r); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkRecordJSON(b *testing.B) {
	now := time.Now().UTC()
	r := &Record{
		DeliveryID: "msg_2bUmGRJzB8VhNq7hX4yQ1Kx9ZtC", EventID: "orders/7/123456", EventType: "order.created",
		SubscriptionID: "sub_2bUmGRJzB8VhNq7hX4yQ1Kx9ZtC", Topic: "orders", Partition: 7, Offset: 123456,
		Attempt: 1, State: Delivered, HTTPStatus: 204, LatencyMS: 1.234, AttemptedAt: now, RecordedAt: now,
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = r.AppendJSON(make([]byte, 0, 384))
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal((*reflected)(r))
		}
	})
}

// jsonSize sizes Write's buffer: a usual record, its strings without
// escapes or its response JSON, must fit it with little to spare, or every
// outcome costs a second allocation, or a larger one, for nothing. A field
// added to AppendJSON and not to jsonSize fails here.
func TestJSONSizeFitsUsualRecords(t *testing.T) {
	records := []*Record{{}, sample(0), sample(1)}
	for _, in := range benchRecords() {
		if in.name != "html-1KiB" {
			records = append(records, in.r)
		}
	}
	for i, r := range records {
		n, hint := len(r.AppendJSON(nil)), r.jsonSize()
		if n > hint || hint-n > 64+len(r.Response)/8 {
			t.Errorf("record %d (%s): %d bytes of JSON, jsonSize %d", i, r.State, n, hint)
		}
	}
}

func TestKeyCannotGrowIntoValue(t *testing.T) {
	for _, in := range benchRecords() {
		key, value := in.r.keyValue()
		if string(key) != in.r.DeliveryID {
			t.Fatalf("%s: key %q, want %q", in.name, key, in.r.DeliveryID)
		}
		if want := in.r.AppendJSON(nil); !bytes.Equal(value, want) {
			t.Fatalf("%s: value\n got %s\nwant %s", in.name, value, want)
		}
		// The key shares the value's array: growing it must not write
		// over the value.
		_ = append(key, "overwrite"...)
		if want := in.r.AppendJSON(nil); !bytes.Equal(value, want) {
			t.Fatalf("%s: appending to the key changed the value to %s", in.name, value)
		}
	}
}
