package api

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
)

// kafkaTopic creates a fresh subscriptions topic and returns its name and
// a master-key cipher for stores on it.
func kafkaTopic(t *testing.T, seeds []string) (string, *subscription.Cipher) {
	t.Helper()
	topic := testkit.Topic(t, "herald.subscriptions")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := subscription.EnsureTopic(ctx, kadm.NewClient(testkit.Client(t, seeds)), topic); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, subscription.MasterKeySize)
	_, _ = rand.Read(key)
	c, err := subscription.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	return topic, c
}

// runStore runs a Store on topic until the test ends and waits until it
// is ready.
func runStore(t *testing.T, seeds []string, topic string, c *subscription.Cipher) *subscription.Store {
	t.Helper()
	st := subscription.NewStore(seeds, topic, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("store run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := st.WaitReady(wctx); err != nil {
		t.Fatalf("store not ready: %v", err)
	}
	return st
}

func newKafkaStore(t *testing.T) Store {
	seeds := testkit.Kafka(t)
	topic, c := kafkaTopic(t, seeds)
	return runStore(t, seeds, topic, c)
}

func TestSubscriptionsKafkaStore(t *testing.T) {
	storeSuite(t, newKafkaStore)
}

// racingStore lets another writer change the subscription between the
// API's If-Match check and its write: the window where only the store can
// see the conflict.
type racingStore struct {
	Store
	before func()
}

func (r racingStore) Update(ctx context.Context, id string, ifVersion int64, change func(*subscription.Subscription) error) (*subscription.Subscription, error) {
	r.before()
	return r.Store.Update(ctx, id, ifVersion, change)
}

// TestConcurrentWriterConflict: two instances share the topic. Instance A
// changes a subscription after instance B's API checked If-Match but before
// B writes; B answers 409 and A's change is what stays, on both.
func TestConcurrentWriterConflict(t *testing.T) {
	seeds := testkit.Kafka(t)
	topic, c := kafkaTopic(t, seeds)
	a := runStore(t, seeds, topic, c)
	b := runStore(t, seeds, topic, c)
	ctx := context.Background()

	sub, _, err := a.Create(ctx, &subscription.Subscription{URL: "https://hooks.example.com/in", Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { _, ok := b.Get(sub.ID); return ok }, "B reads the new subscription")

	h := newHarness(t, Config{}, Deps{Store: racingStore{Store: b, before: func() {
		if _, err := a.Update(ctx, sub.ID, 0, func(s *subscription.Subscription) error {
			s.Description = "instance A"
			return nil
		}); err != nil {
			t.Error(err)
		}
	}}})
	wantError(t, h.do("PATCH", "/v1/subscriptions/"+sub.ID, `{"description": "instance B"}`, "If-Match", etag(sub.Version)),
		http.StatusConflict, codeConflict, "")

	for name, st := range map[string]*subscription.Store{"A": a, "B": b} {
		testkit.Eventually(t, 10*time.Second, func() bool { s, _ := st.Get(sub.ID); return s.Version == sub.Version+1 },
			"instance %s reads A's change", name)
		if s, _ := st.Get(sub.ID); s.Description != "instance A" {
			t.Errorf("instance %s holds %q, want A's change", name, s.Description)
		}
	}
}

// TestConcurrentPatches: many clients patch the same version at once;
// exactly one wins and every other gets 409 or 412, never a 5xx or a
// second success.
func TestConcurrentPatches(t *testing.T) {
	st := newKafkaStore(t)
	h := newHarness(t, Config{}, Deps{Store: st})
	c := create(t, h, validSub)
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := h.do("PATCH", "/v1/subscriptions/"+c.ID, fmt.Sprintf(`{"description": "writer %d"}`, i), "If-Match", etag(c.Version))
			statuses[i] = r.status
		})
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			won++
		case http.StatusConflict, http.StatusPreconditionFailed:
		default:
			t.Errorf("status %d", s)
		}
	}
	if won != 1 {
		t.Errorf("%d writers won (%v), want 1", won, statuses)
	}
	if got, _ := st.Get(c.ID); got.Version != c.Version+1 {
		t.Errorf("version %d after one winning write on %d", got.Version, c.Version)
	}
}
