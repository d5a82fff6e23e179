package api

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/ratelimit"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
)

type recordedOutcomes struct {
	mu   sync.Mutex
	recs []*outcome.Record
}

func (r *recordedOutcomes) Write(_ context.Context, rec *outcome.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

func (r *recordedOutcomes) states() []outcome.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []outcome.State
	for _, rec := range r.recs {
		out = append(out, rec.State)
	}
	return out
}

// TestTestSenderRealPath: a test send is a signed herald.test request made
// by the real attempt path, reported synchronously, recorded as one
// attempt and never retried or dead-lettered, whatever the subscription's
// status and circuit.
func TestTestSenderRealPath(t *testing.T) {
	recv := testkit.NewReceiver(t)
	store := newMemStore()
	h := newHarness(t, Config{}, Deps{Store: store})
	c := create(t, h, `{"url": "`+recv.URL()+`/hook", "status": "paused"}`)
	sender := delivery.NewClient(delivery.AllowPrivateNetworks(true))
	t.Cleanup(sender.CloseIdleConnections)
	outcomes := &recordedOutcomes{}
	observed := &recordedOutcomes{}
	breaker := ratelimit.NewBreaker(ratelimit.WithThreshold(1), ratelimit.WithCooldown(time.Hour))
	breaker.Failure(c.ID) // open
	tester := &TestSender{Attempter: &dispatch.Attempter{
		Send: sender, Subs: store, Outcomes: outcomes, Breaker: breaker,
		Observe: func(ctx context.Context, _ *dispatch.Job, r *outcome.Record) { observed.Write(ctx, r) },
	}}
	sub, _ := store.Get(c.ID)

	res, err := tester.Test(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Delivered || res.State != outcome.Delivered || res.HTTPStatus != 200 || res.EventID == "" || res.DeliveryID == "" {
		t.Errorf("result %+v", res)
	}
	reqs := recv.WaitFor(t, 1, 5*time.Second)
	v, _ := webhook.NewVerifier(c.Secret)
	if err := v.Verify(reqs[0].Header, reqs[0].Body); err != nil {
		t.Errorf("test request does not verify: %v", err)
	}
	if reqs[0].Header.Get(webhook.HeaderID) != res.DeliveryID {
		t.Errorf("webhook-id %s, result %s", reqs[0].Header.Get(webhook.HeaderID), res.DeliveryID)
	}
	if got, _ := store.Get(c.ID); got.Status != subscription.StatusPaused {
		t.Errorf("the test changed the status to %s", got.Status)
	}
	if breaker.State(c.ID) != ratelimit.Open {
		t.Errorf("the circuit is %s; a success while open changes nothing", breaker.State(c.ID))
	}

	// A failure is a result: one failed attempt, no dead letter.
	recv.Respond(testkit.Statuses(http.StatusInternalServerError))
	res, err = tester.Test(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered || res.State != outcome.Failed || res.HTTPStatus != 500 || res.Error == "" {
		t.Errorf("failed result %+v", res)
	}
	want := "[delivered failed]"
	if got := outcomes.states(); fmtStates(got) != want {
		t.Errorf("outcomes %v, want %s", got, want)
	}
	if got := observed.states(); fmtStates(got) != want {
		t.Errorf("observed %v, want %s", got, want)
	}

	// Through the route.
	h2 := newHarness(t, Config{}, Deps{Store: store, Tester: tester})
	recv.Respond(testkit.Statuses(http.StatusOK))
	r := wantReply(t, h2.do("POST", "/v1/subscriptions/"+c.ID+"/test", ""), http.StatusOK)
	checkReply(t, "POST", "/v1/subscriptions/{id}/test", r)
}

func fmtStates(s []outcome.State) string {
	out := "["
	for i, st := range s {
		if i > 0 {
			out += " "
		}
		out += string(st)
	}
	return out + "]"
}
