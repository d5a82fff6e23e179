package retry

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordHeaders reads fuzz input as headers: one per line, key and value
// split at the first '='.
func recordHeaders(raw []byte) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for _, line := range bytes.Split(raw, []byte("\n")) {
		k, v, _ := bytes.Cut(line, []byte("="))
		hs = append(hs, kgo.RecordHeader{Key: string(k), Value: v})
	}
	return hs
}

// FuzzParseHeaders reads arbitrary record headers, as the tier consumer and
// the DLQ reader do with whatever is in the topic. ParseHeaders must never
// panic and fail only with a *CorruptError; what it reads, Encode writes in
// a form that reads back the same (Encode∘Parse is idempotent); and a
// record that passes CheckRetry has a source the job can be rebuilt from.
func FuzzParseHeaders(f *testing.F) {
	f.Add([]byte("herald-delivery-id=msg_abc\nherald-event-id=evt-1\nherald-subscription-id=sub_1\nherald-attempt=2\nherald-due-at=1700000000000\nherald-source=orders/0/42"))
	f.Add([]byte("herald-attempt=-1"))
	f.Add([]byte("herald-due-at=1e3"))
	f.Add([]byte("herald-last-error=\xff\xfe\nce_id=1\ntraceparent=00-x"))
	f.Add([]byte("herald-event-key=\nherald-replay=TRUE\nherald-dlq-reason=gone\nherald-attempts=10"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := ParseHeaders(recordHeaders(raw))
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Header == "" {
				t.Fatalf("error %T %v, want a *CorruptError naming the header", err, err)
			}
			return
		}
		first := h.Encode()
		again, err := ParseHeaders(first)
		if err != nil {
			t.Fatalf("ParseHeaders refuses what Encode wrote (%v): %v", first, err)
		}
		if second := again.Encode(); !reflect.DeepEqual(first, second) {
			t.Fatalf("Encode(Parse(Encode(h))) differs:\n%v\n%v", first, second)
		}
		if err := h.CheckRetry(); err == nil {
			if _, _, _, err := ParseSource(h.Source); err != nil {
				t.Fatalf("CheckRetry passed a record whose source %q does not parse: %v", h.Source, err)
			}
		}
	})
}

// FuzzHeadersRoundTrip writes arbitrary deliveries as headers and reads
// them back: every field must survive, herald-last-error cut to its bound.
func FuzzHeadersRoundTrip(f *testing.F) {
	f.Add("msg_abc", "evt-1", "order.created", "sub_1", "orders/3/42", []byte("key"), uint16(2), int64(1700000000123), uint16(500), "HTTP 500: boom", true, "gone")
	f.Add("", "\xff", "a\nb", "sub/1", "/0/0", []byte(nil), uint16(0), int64(0), uint16(0), "", false, "")
	f.Fuzz(func(t *testing.T, deliveryID, eventID, eventType, subID, source string, key []byte, attempt uint16, dueMS int64, status uint16, lastError string, replay bool, reason string) {
		// Times herald writes: after 1970, before year 10000.
		dueMS %= maxMillis + 1
		if dueMS < 0 {
			dueMS = -dueMS
		}
		h := Headers{
			DeliveryID: deliveryID, EventID: eventID, EventType: eventType, SubscriptionID: subID,
			Source: source, EventKey: key, Attempt: int(attempt), LastStatus: int(status),
			LastError: lastError, Replay: replay, DLQReason: reason,
			Original: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(eventID)}},
		}
		if dueMS > 0 {
			h.DueAt = time.UnixMilli(dueMS)
			h.FirstAttemptAt = h.DueAt
			h.LastAttemptAt = h.DueAt
		}
		if reason != "" {
			h.Attempts = int(attempt)
		}
		got, err := ParseHeaders(h.Encode())
		if err != nil {
			t.Fatalf("ParseHeaders(Encode(%+v)): %v", h, err)
		}
		want := h
		want.LastError = truncateUTF8(h.LastError, MaxLastError)
		if reason == "" {
			want.LastAttemptAt = time.Time{}
		}
		if !got.DueAt.Equal(want.DueAt) || !got.FirstAttemptAt.Equal(want.FirstAttemptAt) || !got.LastAttemptAt.Equal(want.LastAttemptAt) {
			t.Fatalf("times changed: got %v %v %v, want %v %v %v", got.DueAt, got.FirstAttemptAt, got.LastAttemptAt, want.DueAt, want.FirstAttemptAt, want.LastAttemptAt)
		}
		got.DueAt, got.FirstAttemptAt, got.LastAttemptAt = want.DueAt, want.FirstAttemptAt, want.LastAttemptAt
		if string(got.EventKey) != string(want.EventKey) || (got.EventKey == nil) != (want.EventKey == nil) {
			t.Fatalf("event key %q, want %q", got.EventKey, want.EventKey)
		}
		got.EventKey = want.EventKey
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	})
}

// FuzzParseSource: whatever ParseSource accepts, written back as
// topic/partition/offset, parses to the same position.
func FuzzParseSource(f *testing.F) {
	f.Add("orders/0/42")
	f.Add("a/b/1/2")
	f.Add("/0/0")
	f.Add("orders/-1/0")
	f.Add("orders/2147483648/0")
	f.Add("orders/0/+5")
	f.Fuzz(func(t *testing.T, s string) {
		topic, p, o, err := ParseSource(s)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Header != HeaderSource {
				t.Fatalf("error %v, want a CorruptError on %s", err, HeaderSource)
			}
			return
		}
		if topic == "" || p < 0 || o < 0 {
			t.Fatalf("ParseSource(%q) = %q %d %d", s, topic, p, o)
		}
		t2, p2, o2, err := ParseSource(fmt.Sprintf("%s/%d/%d", topic, p, o))
		if err != nil || t2 != topic || p2 != p || o2 != o {
			t.Fatalf("ParseSource(%q) = %q %d %d, but its canonical form reads %q %d %d %v", s, topic, p, o, t2, p2, o2, err)
		}
	})
}
