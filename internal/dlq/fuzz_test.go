package dlq

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/retry"
)

// FuzzParseEntry reads arbitrary dead-letter records, as List does with
// whatever is in herald.dlq: no panic; an entry is corrupt exactly when its
// headers cannot be read or lack what a replay needs; it serialises to JSON
// for the API; filters find it by its own ids; and what Replay would write
// for a sound entry is a retry record the tier consumer accepts.
func FuzzParseEntry(f *testing.F) {
	f.Add([]byte("herald-delivery-id=msg_a\nherald-event-id=evt-1\nherald-subscription-id=sub_1\nherald-attempt=10\nherald-source=orders/0/1\nherald-dlq-reason=attempts_exhausted\nherald-attempts=10"), []byte("sub_1"), []byte(`{"n":1}`))
	f.Add([]byte("herald-attempt=x"), []byte("sub_key"), []byte{0xff})
	f.Add([]byte(""), []byte(nil), []byte(nil))
	sched, err := retry.ParseSchedule("1s,1m")
	if err != nil {
		f.Fatal(err)
	}
	p := retry.NewProducer(nil, sched)
	f.Fuzz(func(t *testing.T, rawHeaders, key, value []byte) {
		var hs []kgo.RecordHeader
		for _, line := range bytes.Split(rawHeaders, []byte("\n")) {
			k, v, _ := bytes.Cut(line, []byte("="))
			hs = append(hs, kgo.RecordHeader{Key: string(k), Value: v})
		}
		r := &kgo.Record{Topic: "herald.dlq", Partition: 1, Offset: 7, Key: key, Value: value, Headers: hs, Timestamp: time.UnixMilli(1_700_000_000_000)}
		e := parse(r)

		h, err := retry.ParseHeaders(hs)
		if err == nil {
			err = replayable(&h)
		}
		if (err != nil) != (e.Corrupt != "") {
			t.Fatalf("Corrupt = %q, but the headers read as %v", e.Corrupt, err)
		}
		if h.SubscriptionID == "" && e.SubscriptionID != string(key) {
			t.Fatalf("SubscriptionID %q, want the record key %q", e.SubscriptionID, key)
		}
		if _, err := json.Marshal(e); err != nil {
			t.Fatalf("entry does not serialise: %v", err)
		}
		for _, f := range []Filter{{}, {IDs: []string{e.DeliveryID}}, {SubscriptionID: e.SubscriptionID}, {Since: e.Timestamp, Until: e.Timestamp.Add(time.Millisecond)}} {
			if !f.match(&e) {
				t.Fatalf("filter %+v does not find the entry %+v", f, e)
			}
		}
		if e.Corrupt != "" {
			return
		}
		// What Replay writes for it.
		rh := e.headers
		rh.Attempt = 1
		rh.DueAt = time.UnixMilli(1_700_000_000_000)
		rh.Replay = true
		rh.DLQReason, rh.Attempts, rh.LastAttemptAt, rh.RetrySource = "", 0, time.Time{}, ""
		rec := p.Requeue(&rh, e.Value)
		back, err := retry.ParseHeaders(rec.Headers)
		if err == nil {
			err = back.CheckRetry()
		}
		if err != nil {
			t.Fatalf("the replayed record of a sound entry would be dead-lettered as corrupt: %v", err)
		}
		if back.DeliveryID != e.DeliveryID || !back.Replay || back.Attempt != 1 || !bytes.Equal(rec.Value, value) {
			t.Fatalf("replayed record %+v does not carry the entry %+v", back, e)
		}
	})
}
