package api

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/ingest"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// TestEventType is the type of the events POST …/test sends.
const TestEventType = "herald.test"

// TestResult is the one attempt a test send made.
type TestResult struct {
	DeliveryID  string        `json:"delivery_id"`
	EventID     string        `json:"event_id"`
	Delivered   bool          `json:"delivered"`
	State       outcome.State `json:"state"`
	HTTPStatus  int           `json:"http_status,omitempty"`
	LatencyMS   float64       `json:"latency_ms"`
	Error       string        `json:"error,omitempty"`
	Response    string        `json:"response,omitempty"`
	TraceID     string        `json:"trace_id,omitempty"`
	AttemptedAt time.Time     `json:"attempted_at"`
}

// TestSender sends test events through the real attempt path: a copy of
// the Attempter, so the request is built, signed, sent and classified as
// any delivery and its outcome recorded (history included), with these
// differences, because a test is one synchronous attempt the operator
// asked for:
//
//   - it is sent whatever the subscription's status and circuit, so an
//     operator can check a paused endpoint before resuming it (its result
//     still counts towards the circuit);
//   - no rate limit, no dedupe lease (its event id is new every time);
//   - no retry and no dead letter: a failure is reported, not queued.
type TestSender struct {
	Attempter *dispatch.Attempter
	// Now is the clock of the test event. Default time.Now.
	Now func() time.Time
}

// Test sends one herald.test event to sub and returns the attempt.
func (t *TestSender) Test(ctx context.Context, sub *subscription.Subscription) (*TestResult, error) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	at := now().UTC()
	id := "test_" + ingest.NewID()[len("evt_"):]
	value, err := json.Marshal(map[string]any{
		"message":         "This is a test event sent by herald.",
		"subscription_id": sub.ID,
		"sent_at":         at.Format(time.RFC3339),
	})
	if err != nil {
		return nil, err
	}
	ev := &event.Event{
		ID: id, Type: TestEventType, Time: at, Topic: TestEventType,
		Value: value, ContentType: "application/json",
	}
	var (
		mu  sync.Mutex
		got *outcome.Record
	)
	a := *t.Attempter
	a.Retrier, a.Limiter, a.Dedupe = nil, nil, nil
	a.Subs = activeSubs{a.Subs, sub.ID}
	if a.Breaker != nil {
		a.Breaker = alwaysAllow{a.Breaker}
	}
	if a.Outcomes != nil {
		a.Outcomes = attemptsOnly{a.Outcomes}
	}
	observe := a.Observe
	a.Observe = func(ctx context.Context, j *dispatch.Job, r *outcome.Record) {
		if !attemptState(r.State) {
			return
		}
		mu.Lock()
		got = r
		mu.Unlock()
		if observe != nil {
			observe(ctx, j, r)
		}
	}
	res := a.Handle(ctx, &dispatch.Job{
		Event: ev, Subscription: sub, DeliveryID: event.DeliveryID(id, sub.ID), Attempt: 1,
	})
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		if res.Err != nil {
			return nil, res.Err
		}
		return nil, subscription.ErrNotFound // deleted while the test started
	}
	return &TestResult{
		DeliveryID: got.DeliveryID, EventID: id, Delivered: got.State == outcome.Delivered,
		State: got.State, HTTPStatus: got.HTTPStatus, LatencyMS: got.LatencyMS, Error: got.Error,
		Response: got.Response, TraceID: got.TraceID, AttemptedAt: got.AttemptedAt.UTC(),
	}, nil
}

// attemptState reports whether a record of a test send is the attempt: the
// dead letter an Attempter without a retrier records after a failure did
// not happen.
func attemptState(s outcome.State) bool {
	return s != outcome.DeadLettered && s != outcome.Alert
}

type activeSubs struct {
	dispatch.Subscriptions
	id string
}

func (s activeSubs) Get(id string) (*subscription.Subscription, bool) {
	sub, ok := s.Subscriptions.Get(id)
	if !ok || id != s.id || sub.Status == subscription.StatusActive {
		return sub, ok
	}
	c := *sub // snapshots are immutable: change a shallow copy
	c.Status = subscription.StatusActive
	return &c, true
}

type alwaysAllow struct{ dispatch.Breaker }

func (alwaysAllow) Allow(string) bool { return true }

type attemptsOnly struct{ dispatch.Outcomes }

func (o attemptsOnly) Write(ctx context.Context, r *outcome.Record) {
	if attemptState(r.State) {
		o.Outcomes.Write(ctx, r)
	}
}

// historyWaitLimit bounds how long a test send waits for its attempt to
// reach the history, so that the attempts list read next shows it.
const historyWaitLimit = time.Second

func (s *Server) testSubscription(w http.ResponseWriter, r *http.Request) {
	if s.tester == nil {
		unavailable(w, "test sending")
		return
	}
	sub, ok := s.store.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, codeNotFound, "subscription not found", "")
		return
	}
	res, err := s.tester.Test(r.Context(), sub)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	if waiter, ok := s.history.(interface{ Wait(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(r.Context(), historyWaitLimit)
		_ = waiter.Wait(ctx)
		cancel()
	}
	writeJSON(w, http.StatusOK, res)
}
