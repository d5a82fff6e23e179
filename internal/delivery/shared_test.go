package delivery

import (
	"bytes"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/pkg/webhook"
)

// TestBuildSharesEnvelopeAcrossSubscriptions pins that the deliveries of one
// event to many subscriptions send the same envelope bytes, built once, each
// signed with its own subscription's key, and that an event without a
// Shared still gets a correct envelope.
func TestBuildSharesEnvelopeAcrossSubscriptions(t *testing.T) {
	ev := testEvent(`{"a":1}`)
	ev.Shared = new(event.Shared)
	other := bytes.Repeat([]byte{0x44}, 32)
	subs := []*subscription.Subscription{
		testSub(),
		{ID: "sub_2", URL: "https://b.example.com/in", Secrets: []subscription.Secret{{Key: other}}},
	}
	var bodies [][]byte
	for i, sub := range subs {
		req, err := Build(ev, sub, event.DeliveryID(ev.ID, sub.ID), testNow)
		if err != nil {
			t.Fatal(err)
		}
		key := testKey
		if i == 1 {
			key = other
		}
		v, err := webhook.NewVerifier(secretString(key))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.With(webhook.WithClock(func() time.Time { return testNow })).Verify(req.Header, req.Body); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
		bodies = append(bodies, req.Body)
	}
	if &bodies[0][0] != &bodies[1][0] {
		t.Fatal("the two deliveries built the envelope twice; want one shared body")
	}

	plain := testEvent(`{"a":1}`)
	req := mustBuild(t, plain, testSub())
	if !bytes.Equal(req.Body, bodies[0]) {
		t.Fatalf("envelope without Shared = %s, with = %s", req.Body, bodies[0])
	}
}
