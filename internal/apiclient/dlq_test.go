package apiclient

import (
	"context"
	"testing"
	"time"
)

func TestDLQRequests(t *testing.T) {
	ctx := context.Background()
	c, rec := newTest(t, 200, `{"data": [
		{"delivery_id": "msg_1", "reason": "gone", "attempts": 1, "dead_lettered_at": "2025-05-01T12:00:00Z", "value": {"n": 1}, "value_encoding": "json"},
		{"delivery_id": "msg_2", "reason": "non_retryable", "value": "/wA=", "value_encoding": "base64"}
	], "replayed": 3}`)
	since := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2025, 5, 2, 0, 0, 0, 5e8, time.FixedZone("", 2*3600))

	got, err := c.ListDLQ(ctx, DLQFilter{SubscriptionID: "sub_a", Since: since, Until: until, IDs: []string{"msg_1", "msg_2"}, Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].DeliveryID != "msg_1" || got[0].Reason != "gone" || got[0].Attempts != 1 ||
		!got[0].Timestamp.Equal(time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("entries %+v", got)
	}
	if v, err := got[0].Event(); err != nil || string(v) != `{"n": 1}` {
		t.Errorf("JSON event %q, %v", v, err)
	}
	if v, err := got[1].Event(); err != nil || string(v) != "\xff\x00" {
		t.Errorf("base64 event %q, %v", v, err)
	}
	if _, err := c.ListDLQ(ctx, DLQFilter{}); err != nil {
		t.Fatal(err)
	}
	n, err := c.ReplayDLQ(ctx, DLQFilter{SubscriptionID: "sub_a", Since: since, IDs: []string{"msg_1"}, Limit: 9})
	if err != nil || n != 3 {
		t.Fatalf("replay: %d, %v", n, err)
	}

	want := []struct{ method, uri, body string }{
		{"GET", "/v1/dlq?ids=msg_1%2Cmsg_2&limit=7&since=2025-05-01T00%3A00%3A00Z&subscription=sub_a&until=2025-05-02T00%3A00%3A00.5%2B02%3A00", ""},
		{"GET", "/v1/dlq", ""},
		// The server refuses fields it does not know: no limit.
		{"POST", "/v1/dlq/replay", `{"subscription_id":"sub_a","since":"2025-05-01T00:00:00Z","ids":["msg_1"]}`},
	}
	if len(rec.reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(rec.reqs), len(want))
	}
	for i, w := range want {
		r := rec.reqs[i]
		if r.Method != w.method || r.URL.RequestURI() != w.uri || rec.bodies[i] != w.body {
			t.Errorf("request %d: %s %s %s\nwant %s %s %s", i, r.Method, r.URL.RequestURI(), rec.bodies[i], w.method, w.uri, w.body)
		}
	}
}

func TestDLQErrorReply(t *testing.T) {
	c, _ := newTest(t, 400, `{"error": {"code": "validation_failed", "message": "select what to replay", "field": ""}}`)
	_, err := c.ReplayDLQ(context.Background(), DLQFilter{})
	e, ok := err.(*Error)
	if !ok || e.Status != 400 || e.Code != "validation_failed" {
		t.Fatalf("error %#v", err)
	}
}
