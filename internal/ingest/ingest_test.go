package ingest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/testkit"
)

func TestDecode(t *testing.T) {
	ev, err := Decode(strings.NewReader(`{"type": "order.created", "data": {"n": 1,  "x": [1, 2]}, "id": "evt-1", "key": "order-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "order.created" || ev.ID != "evt-1" || ev.Key != "order-1" || string(ev.Data) != `{"n":1,"x":[1,2]}` {
		t.Errorf("decoded %+v (data %s)", ev, ev.Data)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"data": {}}`, "type"},
		{`{"type": "a"}`, "data"},
		{`{"type": 5, "data": {}}`, "type"},
		{`{"type": "a", "data": {}, "colour": "blue"}`, "colour"},
		{`{"type": "a\u0000", "data": {}}`, "type"},
		{`{"type": "a", "data": {}, "id": "` + strings.Repeat("x", 300) + `"}`, "id"},
	} {
		_, err := Decode(strings.NewReader(tc.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a field error on %s", tc.body, err, tc.field)
		}
	}
	for _, body := range []string{`[]`, `{"type": "a", "data": {}} {}`, `{`, `null`} {
		if _, err := Decode(strings.NewReader(body)); err == nil {
			t.Errorf("%s decoded", body)
		}
	}
}

type env struct {
	topic string
	cl    *kgo.Client
	rdb   *redis.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	brokers := testkit.Kafka(t)
	topic := testkit.Topic(t, "events")
	testkit.CreateTopic(t, brokers, topic, 3)
	o, err := redis.ParseURL(testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return &env{topic: topic, cl: testkit.Client(t, brokers), rdb: rdb}
}

// records reads every record of the topic written so far.
func (e *env) records(t *testing.T, want int) []*kgo.Record {
	t.Helper()
	cl := testkit.Client(t, e.cl.OptValues(kgo.SeedBrokers)[0].([]string),
		kgo.ConsumeTopics(e.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for ctx.Err() == nil && len(out) <= want {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestPublishWritesACloudEvent: the record carries the CloudEvents headers
// the dispatcher reads, the data as its value, and the key.
func TestPublishWritesACloudEvent(t *testing.T) {
	e := newEnv(t)
	p := NewProducer(e.cl, e.topic)
	ctx := context.Background()
	res, err := p.Publish(ctx, &Event{Type: "order.created", Data: []byte(`{"n":1}`), Key: "order-1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.ID, "evt_") || res.Replayed || res.Offset < 0 {
		t.Errorf("result %+v", res)
	}
	recs := e.records(t, 1)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if header(r, event.HeaderCEID) != res.ID || header(r, event.HeaderCEType) != "order.created" ||
		header(r, HeaderSpecVersion) != "1.0" || header(r, event.HeaderContentType) != "application/json" ||
		string(r.Value) != `{"n":1}` || string(r.Key) != "order-1" || r.Partition != res.Partition || r.Offset != res.Offset {
		t.Errorf("record %+v headers %v", r, r.Headers)
	}
	ev, err := (&event.Extractor{}).FromRecord(r)
	if err != nil || ev.ID != res.ID || ev.Type != "order.created" {
		t.Errorf("the dispatcher reads %+v, %v", ev, err)
	}
	if _, err := p.Publish(ctx, &Event{Type: "x", Data: []byte(`1`)}, "key-1"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("an Idempotency-Key without a store: %v", err)
	}
}

// TestIdempotencyKeyPublishesOnce: the same key twice, even concurrently,
// writes one record and answers both with its id; the same key with another
// event is refused.
func TestIdempotencyKeyPublishesOnce(t *testing.T) {
	e := newEnv(t)
	p := NewProducer(e.cl, e.topic, WithIdempotency(e.rdb, time.Hour))
	ctx := context.Background()
	ev := &Event{Type: "order.paid", Data: []byte(`{"n":2}`)}

	const n = 6
	results := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = p.Publish(ctx, ev, "idem-1") })
	}
	wg.Wait()
	written, id := 0, ""
	for i := range n {
		switch {
		case errors.Is(errs[i], ErrInProgress):
			continue
		case errs[i] != nil:
			t.Fatalf("publish %d: %v", i, errs[i])
		case !results[i].Replayed:
			written++
		}
		if id == "" {
			id = results[i].ID
		} else if results[i].ID != id {
			t.Errorf("ids %s and %s for one key", id, results[i].ID)
		}
	}
	if written != 1 {
		t.Errorf("%d requests wrote, want 1", written)
	}
	again, err := p.Publish(ctx, ev, "idem-1")
	if err != nil || !again.Replayed || again.ID != id {
		t.Errorf("retry after the first finished: %+v, %v", again, err)
	}
	if _, err := p.Publish(ctx, &Event{Type: "order.paid", Data: []byte(`{"n":3}`)}, "idem-1"); !errors.Is(err, ErrKeyReused) {
		t.Errorf("same key, other event: %v", err)
	}
	if other, err := p.Publish(ctx, ev, "idem-2"); err != nil || other.ID == id {
		t.Errorf("another key: %+v, %v", other, err)
	}
	if recs := e.records(t, 2); len(recs) != 2 {
		t.Errorf("%d records for two keys, want 2", len(recs))
	}
}

// TestFailedWriteReleasesKey: a write the broker refused leaves the key
// free, so the client's retry can publish.
func TestFailedWriteReleasesKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bad := NewProducer(e.cl, "no-such-topic-"+testkit.Unique(t, "x"), WithIdempotency(e.rdb, time.Hour))
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ev := &Event{Type: "a", Data: []byte(`{}`)}
	if _, err := bad.Publish(wctx, ev, "idem-x"); err == nil {
		t.Fatal("publishing to a missing topic succeeded")
	}
	good := NewProducer(e.cl, e.topic, WithIdempotency(e.rdb, time.Hour))
	if res, err := good.Publish(ctx, ev, "idem-x"); err != nil || res.Replayed {
		t.Errorf("retry after a failed write: %+v, %v", res, err)
	}
}
