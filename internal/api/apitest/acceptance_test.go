package apitest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/api/apitest"
	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
)

func produce(t *testing.T, st *apitest.Stack, ids ...string) {
	t.Helper()
	cl := testkit.Client(t, st.Brokers, kgo.DefaultProduceTopic(st.Source))
	var recs []*kgo.Record
	for _, id := range ids {
		v, _ := json.Marshal(map[string]string{"type": "order.created", "id": id})
		recs = append(recs, &kgo.Record{Value: v, Headers: []kgo.RecordHeader{
			{Key: "ce_id", Value: []byte(id)}, {Key: "ce_type", Value: []byte("order.created")},
		}})
	}
	testkit.Produce(t, cl, recs...)
}

func verifier(t *testing.T, keys ...string) *webhook.Verifier {
	t.Helper()
	v, err := webhook.NewVerifier(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRotationGracePeriod is the rotation acceptance: during the grace
// period a receiver holding only the old secret and one holding only the
// new both verify every delivery; after it, only the new one does. The
// subscription also signs with ed25519, which a receiver holding only the
// public key verifies throughout.
func TestRotationGracePeriod(t *testing.T) {
	st := apitest.Start(t, apitest.Options{})
	recv := testkit.NewReceiver(t)
	ctx := context.Background()
	created, err := st.Client.CreateSubscription(ctx, &apiclient.SubscriptionCreate{
		URL: recv.URL() + "/hook", Topics: []string{st.Source}, Signing: "ed25519",
	})
	if err != nil {
		t.Fatal(err)
	}
	oldOnly := verifier(t, created.Secret)
	publicOnly := verifier(t, created.PublicKey)

	produce(t, st, "before-1")
	first := recv.WaitFor(t, 1, 30*time.Second)
	for name, v := range map[string]*webhook.Verifier{"old secret": oldOnly, "public key": publicOnly} {
		if err := v.Verify(first[0].Header, first[0].Body); err != nil {
			t.Errorf("before rotation, %s: %v", name, err)
		}
	}

	const grace = 3 * time.Second
	newSecret, err := st.Client.RotateSecret(ctx, created.ID, grace)
	if err != nil {
		t.Fatal(err)
	}
	rotatedAt := time.Now()
	newOnly := verifier(t, newSecret)
	produce(t, st, "grace-1", "grace-2", "grace-3")
	during := recv.WaitFor(t, 4, 30*time.Second)[1:]
	for _, r := range during {
		if r.At.After(rotatedAt.Add(grace)) {
			t.Fatalf("delivery %s arrived after the grace period; the test machine is too slow", r.Header.Get(webhook.HeaderID))
		}
		for name, v := range map[string]*webhook.Verifier{"old secret": oldOnly, "new secret": newOnly, "public key": publicOnly} {
			if err := v.Verify(r.Header, r.Body); err != nil {
				t.Errorf("during the grace period, %s does not verify %s: %v", name, r.Header.Get(webhook.HeaderID), err)
			}
		}
	}

	time.Sleep(time.Until(rotatedAt.Add(grace + 200*time.Millisecond)))
	produce(t, st, "after-1", "after-2", "after-3")
	after := recv.WaitFor(t, 7, 30*time.Second)[4:]
	for _, r := range after {
		id := r.Header.Get(webhook.HeaderID)
		if err := newOnly.Verify(r.Header, r.Body); err != nil {
			t.Errorf("after the grace period, the new secret does not verify %s: %v", id, err)
		}
		if err := publicOnly.Verify(r.Header, r.Body); err != nil {
			t.Errorf("after the grace period, the public key does not verify %s: %v", id, err)
		}
		if err := oldOnly.Verify(r.Header, r.Body); err == nil {
			t.Errorf("after the grace period, the old secret still verifies %s", id)
		}
	}
}

// TestIngestDelivers: POST /v1/events reaches the subscriber; the same
// Idempotency-Key twice publishes one event and answers the same id.
func TestIngestDelivers(t *testing.T) {
	st := apitest.Start(t, apitest.Options{})
	recv := testkit.NewReceiver(t)
	ctx := context.Background()
	sub, err := st.Client.CreateSubscription(ctx, &apiclient.SubscriptionCreate{
		URL: recv.URL(), Topics: []string{st.Source}, EventTypes: []string{"invoice.*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := &apiclient.Event{Type: "invoice.paid", Data: json.RawMessage(`{"invoice": 7, "total": 12.5}`), Key: "inv-7"}
	first, err := st.Client.SendEvent(ctx, ev, "pay-inv-7")
	if err != nil {
		t.Fatal(err)
	}
	second, err := st.Client.SendEvent(ctx, ev, "pay-inv-7")
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !second.Replayed || second.ID != first.ID {
		t.Errorf("first %+v, second %+v: want one event, the same id", first, second)
	}
	other, err := st.Client.SendEvent(ctx, &apiclient.Event{Type: "invoice.sent", Data: json.RawMessage(`{"invoice": 8}`), ID: "inv-8-sent"}, "")
	if err != nil || other.ID != "inv-8-sent" {
		t.Fatalf("event with an id: %+v, %v", other, err)
	}

	reqs := recv.WaitFor(t, 2, 30*time.Second)
	time.Sleep(time.Second) // a duplicate would arrive by now
	if n := recv.Count(); n != 2 {
		t.Fatalf("%d deliveries, want 2 (one per event)", n)
	}
	v := verifier(t, sub.Secret)
	got := map[string]string{}
	for _, r := range reqs {
		if err := v.Verify(r.Header, r.Body); err != nil {
			t.Error(err)
		}
		var body struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		got[r.Header.Get(webhook.HeaderID)] = body.Type + " " + string(body.Data)
	}
	want := map[string]string{
		event.DeliveryID(first.ID, sub.ID):     `invoice.paid {"invoice":7,"total":12.5}`,
		event.DeliveryID("inv-8-sent", sub.ID): `invoice.sent {"invoice":8}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deliveries %v\nwant %v", got, want)
	}
}
