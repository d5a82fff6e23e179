package dispatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/herald-dev/herald/internal/dedupe"
	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/ratelimit"
	"github.com/herald-dev/herald/internal/subscription"
)

// subs is an in-memory Subscriptions for attempt tests; the Kafka-backed
// store is exercised by internal/app's tests.
type subs struct {
	mu sync.Mutex
	m  map[string]*subscription.Subscription
}

func (s *subs) Get(id string) (*subscription.Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.m[id]
	return sub, ok
}

func (s *subs) Update(_ context.Context, id string, _ int64, change func(*subscription.Subscription) error) (*subscription.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := *s.m[id]
	if err := change(&cp); err != nil {
		return nil, err
	}
	s.m[id] = &cp
	return &cp, nil
}

type retryCall struct {
	park bool
	r    Retry
	dl   *DeadLetter
}

type retrier struct {
	mu    sync.Mutex
	calls []retryCall
}

func (r *retrier) Retry(_ context.Context, _ *Job, rt Retry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, retryCall{park: rt.Park, r: rt})
	return nil
}

func (r *retrier) DeadLetter(_ context.Context, _ *Job, why DeadLetter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, retryCall{dl: &why})
	return nil
}

func (r *retrier) last() retryCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[len(r.calls)-1]
}

type outcomes struct {
	mu   sync.Mutex
	recs []outcome.Record
}

func (o *outcomes) Write(_ context.Context, r *outcome.Record) {
	o.mu.Lock()
	o.recs = append(o.recs, *r)
	o.mu.Unlock()
}

func (o *outcomes) states() []outcome.State {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []outcome.State
	for _, r := range o.recs {
		out = append(out, r.State)
	}
	return out
}

type fixture struct {
	a    *Attempter
	sub  *subscription.Subscription
	subs *subs
	ret  *retrier
	outs *outcomes
	srv  *httptest.Server
	rdb  *redis.Client
}

func newFixture(t *testing.T, handler http.HandlerFunc) *fixture {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	client := delivery.NewClient(delivery.AllowPrivateNetworks(true))
	t.Cleanup(client.CloseIdleConnections)

	sub := &subscription.Subscription{
		ID: "sub_a", URL: srv.URL + "/hook", Status: subscription.StatusActive,
		Payload: subscription.PayloadEnvelope, SignatureScheme: subscription.SchemeStandard,
		MaxAttempts: 3, TimeoutMS: 2000,
		Secrets: []subscription.Secret{{Key: []byte("0123456789abcdef0123456789abcdef")}},
	}
	f := &fixture{
		sub:  sub,
		subs: &subs{m: map[string]*subscription.Subscription{sub.ID: sub}},
		ret:  &retrier{},
		outs: &outcomes{},
		srv:  srv,
		rdb:  rdb,
	}
	f.a = &Attempter{
		Send: client, Subs: f.subs, Outcomes: f.outs, Retrier: f.ret,
		Dedupe:  dedupe.New(rdb),
		Limiter: ratelimit.NewLimiter(rdb),
		Breaker: ratelimit.NewBreaker(ratelimit.WithThreshold(2), ratelimit.WithCooldown(time.Hour)),
	}
	return f
}

func (f *fixture) job(attempt int) *Job {
	ev := &event.Event{ID: "evt-1", Type: "order.created", Topic: "orders", Value: []byte(`{"a":1}`), Time: time.Now()}
	return &Job{Event: ev, Subscription: f.sub, DeliveryID: event.DeliveryID(ev.ID, f.sub.ID), Attempt: attempt}
}

func status(code int, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
	}
}

func TestAttemptDeliveredThenDuplicate(t *testing.T) {
	f := newFixture(t, status(204))
	if got := f.a.Handle(context.Background(), f.job(1)); got.Step != Delivered {
		t.Fatalf("first attempt: %v", got.Step)
	}
	// The same delivery again (a rebalance, a replay): Redis suppresses it.
	if got := f.a.Handle(context.Background(), f.job(1)); got.Step != Dropped {
		t.Fatalf("second attempt: %v, want dropped as duplicate", got.Step)
	}
	want := []outcome.State{outcome.Delivered, outcome.Duplicate}
	if got := f.outs.states(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
}

func TestAttemptRetryableGoesToTierWithStatus(t *testing.T) {
	f := newFixture(t, status(503, "Retry-After", "7"))
	got := f.a.Handle(context.Background(), f.job(1))
	if got.Step != Retried {
		t.Fatalf("step %v, want retried", got.Step)
	}
	c := f.ret.last()
	if c.park || c.r.LastStatus != 503 || c.r.After != 7*time.Second {
		t.Fatalf("retry call %+v, want status 503 and After 7s, attempt spent", c)
	}
	// The lease was released, so the retry can take it.
	if f.outs.states()[0] != outcome.Failed {
		t.Fatalf("outcome %v", f.outs.states())
	}
}

func TestAttemptExhaustedDeadLetters(t *testing.T) {
	f := newFixture(t, status(500))
	got := f.a.Handle(context.Background(), f.job(3)) // max_attempts is 3
	if got.Step != DeadLettered {
		t.Fatalf("step %v", got.Step)
	}
	if dl := f.ret.last().dl; dl == nil || dl.Reason != "attempts_exhausted" || dl.LastStatus != 500 {
		t.Fatalf("dead letter %+v", dl)
	}
	states := f.outs.states()
	if states[len(states)-2] != outcome.DeadLettered || states[len(states)-1] != outcome.Alert {
		t.Fatalf("outcomes %v, want dead_lettered then alert last", states)
	}
}

func TestAttemptGoneDisablesSubscription(t *testing.T) {
	f := newFixture(t, status(410))
	if got := f.a.Handle(context.Background(), f.job(1)); got.Step != DeadLettered {
		t.Fatalf("step %v", got.Step)
	}
	if s, _ := f.subs.Get("sub_a"); s.Status != subscription.StatusDisabled {
		t.Fatalf("status %s, want disabled", s.Status)
	}
	if dl := f.ret.last().dl; dl == nil || dl.Reason != "gone" {
		t.Fatalf("dead letter %+v", dl)
	}
	// Nothing more is sent to a disabled subscription.
	if got := f.a.Handle(context.Background(), f.job(1)); got.Step != Dropped {
		t.Fatalf("after disable: %v", got.Step)
	}
}

func TestAttemptAbortHeaderEndsRetries(t *testing.T) {
	f := newFixture(t, status(500, "webhook-delivery", "abort"))
	if got := f.a.Handle(context.Background(), f.job(1)); got.Step != DeadLettered {
		t.Fatalf("step %v", got.Step)
	}
	if dl := f.ret.last().dl; dl == nil || dl.Reason != "aborted" {
		t.Fatalf("dead letter %+v", dl)
	}
}

func TestAttemptRefusedDestinationDeadLetters(t *testing.T) {
	f := newFixture(t, status(204))
	f.a.Send = delivery.NewClient() // private networks refused
	if got := f.a.Handle(context.Background(), f.job(1)); got.Step != DeadLettered {
		t.Fatalf("step %v", got.Step)
	}
	if dl := f.ret.last().dl; dl == nil || dl.Reason != "non_retryable" || dl.LastError == "" {
		t.Fatalf("dead letter %+v", dl)
	}
}

func TestAttemptParksWithoutSpendingAnAttempt(t *testing.T) {
	t.Run("paused", func(t *testing.T) {
		f := newFixture(t, status(204))
		f.sub.Status = subscription.StatusPaused
		if got := f.a.Handle(context.Background(), f.job(2)); got.Step != Parked {
			t.Fatalf("step %v", got.Step)
		}
		if c := f.ret.last(); !c.park {
			t.Fatalf("call %+v, want a park", c)
		}
	})
	t.Run("circuit open", func(t *testing.T) {
		f := newFixture(t, status(500))
		f.a.Handle(context.Background(), f.job(1))
		f.a.Handle(context.Background(), f.job(1)) // threshold 2: open
		if got := f.a.Handle(context.Background(), f.job(1)); got.Step != Parked {
			t.Fatalf("step %v, want parked while the circuit is open", got.Step)
		}
		if c := f.ret.last(); !c.park || c.r.LastError != "circuit open" {
			t.Fatalf("call %+v", c)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		f := newFixture(t, status(204))
		f.sub.RateLimitPerSecond = 1
		parked := 0
		for i := 0; i < 5; i++ {
			j := f.job(1)
			j.DeliveryID += string(rune('a' + i))
			if f.a.Handle(context.Background(), j).Step == Parked {
				parked++
			}
		}
		if parked == 0 {
			t.Fatal("5 deliveries at once to a 1/s endpoint: some must be parked")
		}
		if c := f.ret.last(); !c.park || c.r.After <= 0 {
			t.Fatalf("a rate-limited park carries the limiter's delay, got %+v", c)
		}
	})
}

func TestAttemptDeletedSubscription(t *testing.T) {
	f := newFixture(t, status(204))
	delete(f.subs.m, "sub_a")
	if got := f.a.Handle(context.Background(), f.job(1)); got.Step != Dropped {
		t.Fatalf("step %v", got.Step)
	}
	if s := f.outs.states(); len(s) != 1 || s[0] != outcome.SubscriptionDeleted {
		t.Fatalf("outcomes %v", s)
	}
}

// TestAttemptWaitingForSlotIsAbandonedOnRevoke pins that an attempt waiting
// for its endpoint's request slot when its partition is revoked sends
// nothing, gives its dedupe lease back (the next owner can deliver at once)
// and leaves the slots as it found them.
func TestAttemptWaitingForSlotIsAbandonedOnRevoke(t *testing.T) {
	var requests sync.WaitGroup
	f := newFixture(t, func(w http.ResponseWriter, _ *http.Request) { requests.Done(); w.WriteHeader(204) })
	slots := make(chan struct{}, 1)
	slots <- struct{}{} // another attempt's request is open
	abandon := make(chan struct{})
	j := f.job(1)
	j.slots, j.Abandon = slots, abandon
	done := make(chan Result)
	go func() { done <- f.a.Handle(context.Background(), j) }()
	time.Sleep(20 * time.Millisecond)
	close(abandon)
	if res := <-done; res.Step != Abandoned {
		t.Fatalf("step %v, want abandoned", res.Step)
	}
	if len(slots) != 1 {
		t.Fatalf("%d slots held, want the other attempt's 1", len(slots))
	}
	// The lease is gone: a new attempt of the same delivery goes through.
	<-slots
	requests.Add(1)
	j2 := f.job(1)
	j2.slots = slots
	if res := f.a.Handle(context.Background(), j2); res.Step != Delivered {
		t.Fatalf("second attempt: %v, want delivered (lease released)", res.Step)
	}
	requests.Wait()
	if len(slots) != 0 {
		t.Fatalf("%d slots held after the attempt finished, want 0", len(slots))
	}
}

// TestAttemptGivesSlotBackWhenRequestCannotBeBuilt: an attempt that ends
// between taking its request slot and sending leaves the slot free.
func TestAttemptGivesSlotBackWhenRequestCannotBeBuilt(t *testing.T) {
	f := newFixture(t, status(204))
	f.sub.Secrets = nil // no signing key: the request cannot be built
	slots := make(chan struct{}, 1)
	j := f.job(1)
	j.slots = slots
	if fl, res := f.a.Begin(context.Background(), j); fl != nil || res.Step != DeadLettered {
		t.Fatalf("Begin = %v, %v; want no flight, dead-lettered", fl, res.Step)
	}
	if len(slots) != 0 {
		t.Fatal("the request slot is still held")
	}
}
