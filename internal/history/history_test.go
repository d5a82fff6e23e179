package history

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/testkit"
)

// client is a client to the test Redis, closed when the test ends.
func client(t *testing.T) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func start(t *testing.T, opts ...Option) (*Store, *redis.Client) {
	t.Helper()
	rdb := client(t)
	s := New(rdb, append([]Option{WithFlushEvery(10 * time.Millisecond)}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, rdb
}

func wait(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func rec(sub string, n int, state outcome.State, status int) *outcome.Record {
	return &outcome.Record{
		DeliveryID: fmt.Sprintf("msg_%d", n), EventID: fmt.Sprintf("evt-%d", n), EventType: "order.created",
		SubscriptionID: sub, Attempt: 1, State: state, HTTPStatus: status, LatencyMS: 12.5,
		Response: strings.Repeat("r", 2000), TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		AttemptedAt: time.UnixMilli(int64(1_700_000_000_000 + n*1000)),
	}
}

// TestRecentIsCappedNewestFirst: the list keeps the newest Cap attempts,
// with the fields the attempts API promises and a 1 KiB response excerpt.
func TestRecentIsCappedNewestFirst(t *testing.T) {
	s, _ := start(t, WithCap(5))
	for i := range 8 {
		s.Add(rec("sub_a", i, outcome.Delivered, 200))
	}
	s.Add(rec("sub_b", 100, outcome.Failed, 500))
	wait(t, s)

	got, err := s.Recent(context.Background(), "sub_a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d attempts kept, want 5", len(got))
	}
	for i, a := range got {
		if want := fmt.Sprintf("msg_%d", 7-i); a.DeliveryID != want {
			t.Errorf("attempt %d is %s, want %s (newest first)", i, a.DeliveryID, want)
		}
	}
	a := got[0]
	if len(a.Response) != outcome.ResponseLimit || a.HTTPStatus != 200 || a.LatencyMS != 12.5 ||
		a.TraceID == "" || a.State != outcome.Delivered || a.Attempt != 1 || a.At.IsZero() {
		t.Errorf("attempt %+v", a)
	}
	if got, _ := s.Recent(context.Background(), "sub_a", 2); len(got) != 2 {
		t.Errorf("Recent(2) gave %d", len(got))
	}
	if got, _ := s.Recent(context.Background(), "sub_none", 10); len(got) != 0 {
		t.Errorf("unknown subscription has %d attempts", len(got))
	}
}

// TestOnlyAttemptsAreKept: parked, duplicate and alert records are not
// attempts; a dead letter only counts.
func TestOnlyAttemptsAreKept(t *testing.T) {
	s, _ := start(t)
	s.Add(rec("sub_a", 1, outcome.Parked, 0))
	s.Add(rec("sub_a", 2, outcome.Duplicate, 0))
	s.Add(rec("sub_a", 3, outcome.Alert, 0))
	s.Add(rec("sub_a", 4, outcome.Disabled, 0)) // skipped: no request was made
	s.Add(rec("sub_a", 5, outcome.Disabled, 410))
	s.Add(rec("sub_a", 6, outcome.DeadLettered, 410))
	wait(t, s)
	got, _ := s.Recent(context.Background(), "sub_a", 0)
	if len(got) != 1 || got[0].DeliveryID != "msg_5" {
		t.Errorf("kept %+v, want only the 410 attempt", got)
	}
	h, err := s.Health(context.Background(), "sub_a")
	if err != nil {
		t.Fatal(err)
	}
	if h["sub_a"].DeadLetters != 1 {
		t.Errorf("dead letters %d, want 1", h["sub_a"].DeadLetters)
	}
}

func TestHealth(t *testing.T) {
	s, _ := start(t)
	ctx := context.Background()
	for i := range 3 {
		s.Add(rec("sub_a", i, outcome.Delivered, 200))
	}
	fail := rec("sub_a", 3, outcome.Failed, 503)
	fail.Error = "HTTP 503 Service Unavailable"
	s.Add(fail)
	s.Add(rec("sub_a", 4, outcome.DeadLettered, 503))
	s.Add(rec("sub_a", 5, outcome.DeadLettered, 503))
	wait(t, s)

	hs, err := s.Health(ctx, "sub_a", "sub_quiet")
	if err != nil {
		t.Fatal(err)
	}
	h := hs["sub_a"]
	if h.Attempts != 4 || h.Delivered != 3 || h.SuccessRate == nil || *h.SuccessRate != 0.75 {
		t.Errorf("counts %+v", h)
	}
	if h.LastError != fail.Error || h.LastStatus != 503 || !h.LastErrorAt.Equal(fail.AttemptedAt) || h.DeadLetters != 2 {
		t.Errorf("last error %+v", h)
	}
	if q := hs["sub_quiet"]; q.Attempts != 0 || q.SuccessRate != nil || q.DeadLetters != 0 {
		t.Errorf("quiet subscription %+v", q)
	}

	if err := s.Replayed(ctx, map[string]int{"sub_a": 3}); err != nil {
		t.Fatal(err)
	}
	if hs, _ := s.Health(ctx, "sub_a"); hs["sub_a"].DeadLetters != 0 {
		t.Errorf("after replaying more than counted: %d, want 0", hs["sub_a"].DeadLetters)
	}
	if err := s.Forget(ctx, "sub_a"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Recent(ctx, "sub_a", 0); len(got) != 0 {
		t.Errorf("forgotten subscription still has %d attempts", len(got))
	}
}

// TestAddNeverBlocks: with Run not keeping up, Add drops and counts.
func TestAddNeverBlocks(t *testing.T) {
	o, _ := redis.ParseURL(testkit.Redis(t))
	rdb := redis.NewClient(o)
	defer rdb.Close()
	s := New(rdb, WithQueue(2)) // not running
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			s.Add(rec("sub_a", i, outcome.Delivered, 200))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Add blocked")
	}
	if s.Dropped() != 8 {
		t.Errorf("dropped %d, want 8", s.Dropped())
	}
}

// TestRunWritesQueueOnStop: what is queued when the context ends is still
// written.
func TestRunWritesQueueOnStop(t *testing.T) {
	o, _ := redis.ParseURL(testkit.Redis(t))
	rdb := redis.NewClient(o)
	defer rdb.Close()
	s := New(rdb, WithFlushEvery(time.Hour))
	for i := range 3 {
		s.Add(rec("sub_a", i, outcome.Delivered, 200))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Recent(context.Background(), "sub_a", 0); len(got) != 3 {
		t.Errorf("%d attempts written on stop, want 3", len(got))
	}
}

// TestBatchKeepsNewestErrorAndAttempt: within one batch the health fields
// end as if every attempt had been written in turn.
func TestBatchKeepsNewestErrorAndAttempt(t *testing.T) {
	s, _ := start(t, WithCap(3))
	first := rec("sub_a", 1, outcome.Failed, 500)
	first.Error = "first"
	second := rec("sub_a", 2, outcome.Failed, 502)
	second.Error = "second"
	s.Add(first)
	s.Add(second)
	for i := 3; i < 8; i++ {
		s.Add(rec("sub_a", i, outcome.Delivered, 200))
	}
	wait(t, s)
	hs, err := s.Health(context.Background(), "sub_a")
	if err != nil {
		t.Fatal(err)
	}
	h := hs["sub_a"]
	if h.LastError != "second" || h.LastStatus != 502 || !h.LastErrorAt.Equal(second.AttemptedAt) {
		t.Errorf("last error %q %d %v, want the newest error", h.LastError, h.LastStatus, h.LastErrorAt)
	}
	if want := rec("sub_a", 7, outcome.Delivered, 200).AttemptedAt; !h.LastAttemptAt.Equal(want) {
		t.Errorf("last attempt %v, want %v", h.LastAttemptAt, want)
	}
	got, _ := s.Recent(context.Background(), "sub_a", 0)
	if len(got) != 3 || got[0].DeliveryID != "msg_7" || got[2].DeliveryID != "msg_5" {
		t.Errorf("kept %d attempts starting %v, want msg_7..msg_5", len(got), got)
	}
}

// TestKeysExpire: a subscription's keys get the TTL with its first batch,
// and keep one across later batches.
func TestKeysExpire(t *testing.T) {
	s, rdb := start(t, WithTTL(time.Hour))
	ctx := context.Background()
	for round := range 2 {
		s.Add(rec("sub_ttl", round, outcome.Failed, 500))
		wait(t, s)
		for _, key := range []string{s.attemptsKey("sub_ttl"), s.healthKey("sub_ttl")} {
			ttl, err := rdb.TTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl <= 0 || ttl > time.Hour {
				t.Fatalf("round %d: %s has TTL %v, want up to an hour", round, key, ttl)
			}
		}
	}
}

// countCommands counts the commands sent in pipelines.
type countCommands struct{ n atomic.Int64 }

func (c *countCommands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *countCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}

func (c *countCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// countingClient is a client to the test Redis that counts the commands
// its pipelines send.
func countingClient(t *testing.T) (*redis.Client, *countCommands) {
	t.Helper()
	rdb := client(t)
	c := new(countCommands)
	rdb.AddHook(c)
	return rdb, c
}

// TestManySubscriptionsFewCommands pins the batching of a fan-out: attempts
// to a thousand subscriptions, a few each, are written with a few commands
// per subscription, not per attempt.
func TestManySubscriptionsFewCommands(t *testing.T) {
	rdb, c := countingClient(t)
	s := New(rdb, WithFlushEvery(time.Hour), WithPrefix(fmt.Sprintf("herald:fanout%d:", time.Now().UnixNano())))
	const subs, each = 1000, 4
	for i := range subs * each {
		s.Add(rec(fmt.Sprintf("sub_%d", i%subs), i, outcome.Delivered, 204))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Dropped() != 0 {
		t.Fatalf("%d attempts dropped", s.Dropped())
	}
	if got, _ := s.Recent(context.Background(), "sub_7", 0); len(got) != each {
		t.Fatalf("%d attempts kept for sub_7, want %d", len(got), each)
	}
	if n := c.n.Load(); n > subs*each*3/2 {
		t.Fatalf("%d commands for %d attempts to %d subscriptions, want at most 1.5 per attempt", n, subs*each, subs)
	}
}

// TestSpreadAttemptsOneCommandEach pins the common shape of a fan-out's
// batches, one attempt per subscription each: after a subscription's first
// batch its attempts cost one command each, with a trim now and then, and
// its list still never holds more than twice the cap nor shows more than
// the cap.
func TestSpreadAttemptsOneCommandEach(t *testing.T) {
	rdb, c := countingClient(t)
	const subs, batches, cap = 50, 40, 8
	s := New(rdb, WithCap(cap), WithPrefix(fmt.Sprintf("herald:spread%d:", time.Now().UnixNano())))
	ctx := context.Background()
	var first int64
	for b := range batches {
		batch := make([]queued, subs)
		for i := range batch {
			batch[i] = queued{sub: fmt.Sprintf("sub_%d", i), a: Attempt{DeliveryID: fmt.Sprintf("msg_%d_%d", b, i), State: outcome.Delivered, HTTPStatus: 204, At: time.UnixMilli(int64(1_700_000_000_000 + b*1000))}}
		}
		if err := s.write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if b == 0 {
			first = c.n.Load()
		}
		n, err := rdb.LLen(ctx, s.attemptsKey("sub_3")).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > 2*cap {
			t.Fatalf("batch %d: list holds %d attempts, want at most %d", b, n, 2*cap)
		}
	}
	later := c.n.Load() - first
	attempts := int64(subs * (batches - 1))
	// One LPUSH each, and one LTRIM per cap attempts of a subscription.
	if want := attempts + attempts/cap + subs; later > want {
		t.Fatalf("%d commands for %d attempts after the first batch, want at most %d", later, attempts, want)
	}
	got, err := s.Recent(ctx, "sub_3", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != cap || got[0].DeliveryID != fmt.Sprintf("msg_%d_3", batches-1) {
		t.Fatalf("Recent gave %d attempts, newest %+v; want %d, the newest first", len(got), got[0], cap)
	}
	h, err := s.Health(ctx, "sub_3")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMilli(int64(1_700_000_000_000 + (batches-1)*1000)); !h["sub_3"].LastAttemptAt.Equal(want) {
		t.Fatalf("last attempt at %v, want %v (the list's head)", h["sub_3"].LastAttemptAt, want)
	}
}

// TestUnknownListIsTrimmed: a list this store has not written yet, left
// long by another instance or an earlier run, is trimmed at its first
// write.
func TestUnknownListIsTrimmed(t *testing.T) {
	s, rdb := start(t, WithCap(5))
	ctx := context.Background()
	for i := range 30 {
		if err := rdb.LPush(ctx, s.attemptsKey("sub_long"), fmt.Sprintf(`{"delivery_id":"old_%d"}`, i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s.Add(rec("sub_long", 1, outcome.Delivered, 200))
	wait(t, s)
	if n, _ := rdb.LLen(ctx, s.attemptsKey("sub_long")).Result(); n != 5 {
		t.Fatalf("list holds %d after the first write, want 5", n)
	}
}

// FuzzAttemptJSON holds the hand-written encoding of an attempt to
// encoding/json's, which reads it back.
func FuzzAttemptJSON(f *testing.F) {
	f.Add("msg_1", "orders/1/2", "order.created", 2, 503, 12.5, "boom <&>", "\xff\u2028", "4bf92f3577b34da6a3ce929d0e0e4736", int64(1_700_000_000_123_456_789))
	f.Add("", "", "", 0, 0, 0.0, "", "", "", int64(0))
	f.Add("m", "e", "t", 1, 204, 1e-7, "", "", "", int64(-1))
	f.Fuzz(func(t *testing.T, id, eventID, typ string, attempt, status int, latency float64, errText, resp, traceID string, at int64) {
		if math.IsNaN(latency) || math.IsInf(latency, 0) {
			return
		}
		a := &Attempt{DeliveryID: id, EventID: eventID, EventType: typ, Attempt: attempt, State: outcome.Failed,
			HTTPStatus: status, LatencyMS: latency, Error: errText, Response: resp, TraceID: traceID,
			At: time.Unix(0, at).UTC()}
		want, err := json.Marshal(a)
		if err != nil {
			t.Skip(err) // a time encoding/json refuses
		}
		if got := a.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
