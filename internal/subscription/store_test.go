package subscription

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-dev/herald/pkg/webhook"
)

// testKafka is a cluster and a subscriptions topic of the test's own, so
// tests could share a real broker.
type testKafka struct {
	seeds []string
	topic string
}

// TODO: take the cluster from testkit.Kafka(t) once internal/testkit lands,
// so these run on a real broker too.
func kafka(t *testing.T) *testKafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := &testKafka{seeds: c.ListenAddrs(), topic: "herald.subscriptions." + newWriteID()}
	if err := EnsureTopic(t.Context(), kadm.NewClient(newClient(t, k.seeds)), k.topic); err != nil {
		t.Fatal(err)
	}
	return k
}

func newClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// start runs a Store until the test ends and waits until it is ready.
func start(t *testing.T, k *testKafka, c *Cipher, opts ...StoreOption) *Store {
	t.Helper()
	st := NewStore(k.seeds, k.topic, c, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	if err := st.WaitReady(wctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return st
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually waits for cond, which another Store's tail makes true.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// records reads every record of the topic as it is in the log.
func records(t *testing.T, k *testKafka) []*kgo.Record {
	t.Helper()
	cl := newClient(t, k.seeds, kgo.ConsumeTopics(k.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx(t), k.topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(k.topic, 0)
	var out []*kgo.Record
	for int64(len(out)) < end.Offset {
		f := cl.PollFetches(ctx(t))
		if err := f.Err0(); err != nil {
			t.Fatal(err)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// lastFor returns the last record for key, the one compaction keeps.
func lastFor(t *testing.T, k *testKafka, key string) *kgo.Record {
	t.Helper()
	var last *kgo.Record
	for _, r := range records(t, k) {
		if string(r.Key) == key {
			last = r
		}
	}
	if last == nil {
		t.Fatalf("no record for %s", key)
	}
	return last
}

func newSub() *Subscription {
	return &Subscription{URL: "https://hooks.example.com/x", Topics: []string{"orders"}, EventTypes: []string{"order.*"}}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestStoreCreateGetList(t *testing.T) {
	k := kafka(t)
	clock := &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	st := start(t, k, newTestCipher(t), WithClock(clock.Now))

	in := newSub()
	got, secret, err := st.Create(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ID) != len("sub_")+26 || !strings.HasPrefix(got.ID, "sub_") || strings.ToLower(got.ID) != got.ID {
		t.Errorf("ID = %q, want sub_ and 26 lower-case base32 characters", got.ID)
	}
	if got.Version != 1 || !got.CreatedAt.Equal(clock.Now()) || !got.UpdatedAt.Equal(clock.Now()) {
		t.Errorf("version %d, created %v, updated %v; want 1 and the clock's time", got.Version, got.CreatedAt, got.UpdatedAt)
	}
	if got.Status != StatusActive || got.Payload != PayloadEnvelope || got.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("defaults not applied: %+v", got)
	}
	if in.ID != "" || in.Status != "" {
		t.Error("Create changed its argument")
	}
	key, err := webhook.ParseSecret(secret)
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q: %v", secret, err)
	}
	if keys := got.SigningSecrets(clock.Now()); len(keys) != 1 || !bytes.Equal(keys[0].Key, key) {
		t.Errorf("the stored secret is not the one returned")
	}

	// Read-your-writes: no waiting between Create and Get.
	if g, ok := st.Get(got.ID); !ok || g != got {
		t.Fatalf("Get right after Create = %v, %v", g, ok)
	}
	if st.Len() != 1 {
		t.Errorf("Len = %d", st.Len())
	}
	if m := st.Match("orders", "order.created"); len(m) != 1 || m[0].ID != got.ID {
		t.Errorf("Match = %v", ids(m))
	}
	if m := st.Match("orders", "payment.created"); len(m) != 0 {
		t.Errorf("Match of another type = %v", ids(m))
	}

	second, _, err := st.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{got.ID, second.ID}
	slices.Sort(want)
	if l := ids(st.List()); !slices.Equal(l, want) {
		t.Errorf("List = %v, want %v", l, want)
	}
	if l := st.List(); l[0].ID > l[1].ID {
		t.Error("List is not sorted by ID")
	}
}

func TestStoreCreateValidates(t *testing.T) {
	st := start(t, kafka(t), newTestCipher(t))
	_, _, err := st.Create(ctx(t), &Subscription{URL: "ftp://x"})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "url" {
		t.Fatalf("Create with a bad url = %v, want a FieldError on url", err)
	}
	if st.Len() != 0 {
		t.Error("an invalid subscription was stored")
	}
}

func TestStoreSecondInstanceFollows(t *testing.T) {
	k := kafka(t)
	c := newTestCipher(t)
	a := start(t, k, c)
	b := start(t, k, c)

	var mu sync.Mutex
	var seen []string
	b.Subscribe(func(old, new *Subscription) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case old == nil:
			seen = append(seen, "create "+new.URL)
		case new == nil:
			seen = append(seen, "delete "+old.URL)
		default:
			seen = append(seen, fmt.Sprintf("update %s→%s v%d", old.URL, new.URL, new.Version))
		}
	})

	sub, secret, err := a.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B holds the subscription", func() bool { _, ok := b.Get(sub.ID); return ok })
	got, _ := b.Get(sub.ID)
	key, _ := webhook.ParseSecret(secret)
	if !bytes.Equal(got.Secrets[0].Key, key) {
		t.Error("B decrypted another secret")
	}

	if _, err := a.Update(ctx(t), sub.ID, 1, func(s *Subscription) error { s.URL = "https://new.example/"; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees version 2", func() bool { s, _ := b.Get(sub.ID); return s.Version == 2 })
	if m := b.Match("orders", "order.x"); len(m) != 1 || m[0].URL != "https://new.example/" {
		t.Errorf("B's index has %v", m)
	}

	if err := a.Delete(ctx(t), sub.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B drops it", func() bool { return b.Len() == 0 })
	if m := b.Match("orders", "order.x"); len(m) != 0 {
		t.Errorf("B still matches the deleted subscription")
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{"create https://hooks.example.com/x", "update https://hooks.example.com/x→https://new.example/ v2", "delete https://new.example/"}
	if !slices.Equal(seen, want) {
		t.Errorf("notifications = %q, want %q", seen, want)
	}
}

func TestStoreRestartLoadsEverything(t *testing.T) {
	k := kafka(t)
	c := newTestCipher(t)
	first := NewStore(k.seeds, k.topic, c)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(runCtx) }()

	// Writes wait for Run to catch up.
	var created []*Subscription
	var secrets []string
	for i := range 20 {
		s := newSub()
		s.Description = fmt.Sprint("n", i)
		sub, secret, err := first.Create(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		created, secrets = append(created, sub), append(secrets, secret)
	}
	if _, err := first.Update(ctx(t), created[0].ID, 0, func(s *Subscription) error { s.Status = StatusPaused; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := first.Delete(ctx(t), created[1].ID); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.Create(ctx(t), newSub()); !errors.Is(err, ErrStopped) {
		t.Errorf("Create after Run returned: %v, want ErrStopped", err)
	}

	var loaded []string
	second := NewStore(k.seeds, k.topic, c)
	second.Subscribe(func(_, new *Subscription) {
		if new != nil {
			loaded = append(loaded, new.ID)
		}
	})
	if second.Ready() {
		t.Fatal("ready before Run")
	}
	runCtx2, stop2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- second.Run(runCtx2) }()
	defer func() {
		stop2()
		if err := <-done2; err != nil {
			t.Error(err)
		}
	}()
	if err := second.WaitReady(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// Ready means caught up: everything is there without waiting.
	if second.Len() != 19 {
		t.Fatalf("restarted store holds %d subscriptions, want 19", second.Len())
	}
	if len(loaded) != 21 { // 20 creates and one update, told while loading
		t.Errorf("%d change notifications while loading, want 21", len(loaded))
	}
	if _, ok := second.Get(created[1].ID); ok {
		t.Error("the deleted subscription came back")
	}
	if s, _ := second.Get(created[0].ID); s.Status != StatusPaused || s.Version != 2 {
		t.Errorf("updated subscription loaded as %s v%d", s.Status, s.Version)
	}
	for i, want := range created[2:] {
		got, _ := second.Get(want.ID)
		key, _ := webhook.ParseSecret(secrets[i+2])
		if got.Description != want.Description || !got.CreatedAt.Equal(want.CreatedAt) || !bytes.Equal(got.Secrets[0].Key, key) {
			t.Errorf("%s loaded as %+v", want.ID, got)
		}
	}
}

func TestStoreDelete(t *testing.T) {
	k := kafka(t)
	st := start(t, k, newTestCipher(t))
	sub, _, err := st.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx(t), sub.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get(sub.ID); ok {
		t.Error("Get after Delete found it")
	}
	if r := lastFor(t, k, sub.ID); r.Value != nil {
		t.Errorf("last record for the id is %q, want a tombstone", r.Value)
	}
	if err := st.Delete(ctx(t), sub.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := st.Update(ctx(t), sub.ID, 0, func(*Subscription) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update after Delete = %v, want ErrNotFound", err)
	}
	if _, err := st.RotateSecret(ctx(t), "sub_nope", time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("RotateSecret of an unknown id = %v, want ErrNotFound", err)
	}
}

func TestStoreUpdate(t *testing.T) {
	k := kafka(t)
	clock := &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	st := start(t, k, newTestCipher(t), WithClock(clock.Now))
	sub, _, err := st.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)

	got, err := st.Update(ctx(t), sub.ID, 1, func(s *Subscription) error {
		s.Description = "changed"
		s.ID, s.Version, s.CreatedAt = "sub_other", 99, time.Time{} // not the caller's to set
		s.Secrets = nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "changed" || got.ID != sub.ID || got.Version != 2 || !got.CreatedAt.Equal(sub.CreatedAt) ||
		!got.UpdatedAt.Equal(clock.Now()) || len(got.Secrets) != 1 {
		t.Errorf("Update gave %+v", got)
	}
	if sub.Description != "" || sub.Version != 1 {
		t.Error("Update changed the previous snapshot")
	}
	if g, _ := st.Get(sub.ID); g != got {
		t.Error("Get right after Update does not return the new version")
	}

	if _, err := st.Update(ctx(t), sub.ID, 1, func(s *Subscription) error { return nil }); !errors.Is(err, ErrConflict) {
		t.Errorf("Update with a stale version = %v, want ErrConflict", err)
	}
	_, err = st.Update(ctx(t), sub.ID, 0, func(s *Subscription) error { s.TimeoutMS = 5; return nil })
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "timeout_ms" {
		t.Errorf("invalid Update = %v, want a FieldError on timeout_ms", err)
	}
	boom := errors.New("boom")
	if _, err := st.Update(ctx(t), sub.ID, 0, func(s *Subscription) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Update whose change fails = %v, want its error", err)
	}
	if g, _ := st.Get(sub.ID); g.Version != 2 {
		t.Errorf("failed updates changed the version to %d", g.Version)
	}
}

// Two instances update the same version at once: the log orders them, the
// first wins everywhere, the second gets ErrConflict, and the last record
// for the id is the winner's, so a compacted topic still loads the winner.
func TestStoreConcurrentUpdateConflict(t *testing.T) {
	k := kafka(t)
	c := newTestCipher(t)
	a := start(t, k, c)
	b := start(t, k, c)
	sub, _, err := a.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B holds it", func() bool { _, ok := b.Get(sub.ID); return ok })

	// Both pass their local version check before either writes.
	var barrier sync.WaitGroup
	barrier.Add(2)
	var wg sync.WaitGroup
	results := make(map[string]error)
	var mu sync.Mutex
	for name, st := range map[string]*Store{"a": a, "b": b} {
		wg.Go(func() {
			_, err := st.Update(ctx(t), sub.ID, 1, func(s *Subscription) error {
				s.Description = "written by " + name
				barrier.Done()
				barrier.Wait()
				return nil
			})
			mu.Lock()
			results[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()

	var winner string
	for name, err := range results {
		switch {
		case err == nil:
			if winner != "" {
				t.Fatalf("both updates won")
			}
			winner = name
		case !errors.Is(err, ErrConflict):
			t.Fatalf("%s: %v, want nil or ErrConflict", name, err)
		}
	}
	if winner == "" {
		t.Fatal("neither update won")
	}
	want := "written by " + winner
	for name, st := range map[string]*Store{"a": a, "b": b} {
		eventually(t, name+" agrees", func() bool { s, _ := st.Get(sub.ID); return s.Version == 2 && s.Description == want })
	}

	last := lastFor(t, k, sub.ID)
	var rec record
	if err := json.Unmarshal(last.Value, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Version != 2 || rec.Description != want {
		t.Errorf("last record for the id is v%d %q; compaction would keep the loser", rec.Version, rec.Description)
	}
	if n := len(records(t, k)); n != 4 { // create, winner, loser, restated winner
		t.Errorf("%d records in the topic, want 4", n)
	}
	// A store that reads only the last record, as after compaction, loads
	// the winner.
	fresh := start(t, k, c)
	if s, _ := fresh.Get(sub.ID); s.Description != want {
		t.Errorf("a fresh instance loaded %q", s.Description)
	}
}

// With ifVersion 0 a lost race is retried on the new version: no update is
// lost.
func TestStoreUpdateWithoutVersionRetries(t *testing.T) {
	k := kafka(t)
	c := newTestCipher(t)
	a := start(t, k, c)
	b := start(t, k, c)
	sub, _, err := a.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B holds it", func() bool { _, ok := b.Get(sub.ID); return ok })
	var wg sync.WaitGroup
	for i, st := range []*Store{a, b, a, b} {
		wg.Go(func() {
			_, err := st.Update(ctx(t), sub.ID, 0, func(s *Subscription) error {
				s.Headers = map[string]string{fmt.Sprint("x-", i): "1"}
				s.RateLimitPerSecond++
				return nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for _, st := range []*Store{a, b} {
		eventually(t, "all four updates applied", func() bool {
			s, _ := st.Get(sub.ID)
			return s.Version == 5 && s.RateLimitPerSecond == 4
		})
	}
}

func TestStoreRotateSecret(t *testing.T) {
	k := kafka(t)
	clock := &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	st := start(t, k, newTestCipher(t), WithClock(clock.Now))
	sub, first, err := st.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	firstKey, _ := webhook.ParseSecret(first)

	second, err := st.RotateSecret(ctx(t), sub.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secondKey, _ := webhook.ParseSecret(second)
	if second == first {
		t.Fatal("rotation returned the same secret")
	}
	got, _ := st.Get(sub.ID)
	if got.Version != 2 {
		t.Errorf("version %d after rotation", got.Version)
	}
	keys := got.SigningSecrets(clock.Now().Add(59 * time.Minute))
	if len(keys) != 2 || !bytes.Equal(keys[0].Key, secondKey) || !bytes.Equal(keys[1].Key, firstKey) {
		t.Errorf("within the grace period: %d keys, want the new then the old", len(keys))
	}
	if keys := got.SigningSecrets(clock.Now().Add(time.Hour)); len(keys) != 1 || !bytes.Equal(keys[0].Key, secondKey) {
		t.Errorf("after the grace period: %d keys, want only the new", len(keys))
	}

	// The next rotation, after the grace period, drops the expired secret.
	clock.Add(2 * time.Hour)
	third, err := st.RotateSecret(ctx(t), sub.ID, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	thirdKey, _ := webhook.ParseSecret(third)
	got, _ = st.Get(sub.ID)
	if len(got.Secrets) != 2 || !bytes.Equal(got.Secrets[0].Key, thirdKey) || !bytes.Equal(got.Secrets[1].Key, secondKey) {
		t.Errorf("after a second rotation: %d secrets stored, want the third and the second", len(got.Secrets))
	}
	if exp := got.Secrets[1].ExpiresAt; !exp.Equal(clock.Now().Add(10 * time.Minute)) {
		t.Errorf("second secret expires at %v", exp)
	}

	// Grace 0 revokes every previous secret at once.
	if _, err := st.RotateSecret(ctx(t), sub.ID, 0); err != nil {
		t.Fatal(err)
	}
	got, _ = st.Get(sub.ID)
	if len(got.Secrets) != 1 || len(got.SigningSecrets(clock.Now())) != 1 {
		t.Errorf("rotation without grace kept %d secrets", len(got.Secrets))
	}
}

func TestStoreSecretsNeverInJSON(t *testing.T) {
	k := kafka(t)
	st := start(t, k, newTestCipher(t))
	in := newSub()
	_, in.SigningKey, _ = ed25519.GenerateKey(rand.Reader)
	sub, secret, err := st.Create(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if sub.PublicKey != publicKeyOf(in.SigningKey) || !sub.SigningKey.Equal(in.SigningKey) {
		t.Error("signing key not kept or public key not derived")
	}
	rotated, err := st.RotateSecret(ctx(t), sub.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ = st.Get(sub.ID)

	api, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	for _, r := range records(t, k) {
		stored = append(stored, r.Value...)
	}
	seed := base64.StdEncoding.EncodeToString(in.SigningKey.Seed())
	for _, s := range []string{secret, rotated} {
		for what, out := range map[string][]byte{"API JSON": api, "topic": stored} {
			if bytes.Contains(out, []byte(strings.TrimPrefix(s, "whsec_"))) {
				t.Errorf("%s contains a secret", what)
			}
			if bytes.Contains(out, []byte(seed)) {
				t.Errorf("%s contains the signing key", what)
			}
		}
	}
	for _, field := range []string{`"secrets"`, `"signing_key"`, `"secret"`} {
		if bytes.Contains(api, []byte(field)) {
			t.Errorf("API JSON has %s: %s", field, api)
		}
	}
	if !bytes.Contains(stored, []byte(`"sealed":"v1:`)) {
		t.Error("the topic holds no sealed secrets")
	}
}

func TestStoreSkipsUnreadableRecords(t *testing.T) {
	k := kafka(t)
	good := start(t, k, newTestCipher(t))
	sealed, _, err := good.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, k.seeds, kgo.DefaultProduceTopic(k.topic))
	valid, _ := json.Marshal(&Subscription{ID: "sub_other", URL: "https://x.example", Version: 1})
	if err := cl.ProduceSync(ctx(t),
		&kgo.Record{Key: []byte("sub_bad"), Value: []byte("{not json")},
		&kgo.Record{Key: []byte("sub_mismatch"), Value: valid},
		&kgo.Record{Key: []byte("sub_empty"), Value: []byte{}},
		&kgo.Record{Key: []byte("sub_other"), Value: valid},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}

	otherKey := make([]byte, MasterKeySize)
	rand.Read(otherKey)
	wrong, _ := NewCipher(otherKey)
	core, logs := observer.New(zap.ErrorLevel)
	st := start(t, k, wrong, WithLogger(zap.New(core)))

	if _, ok := st.Get(sealed.ID); ok {
		t.Error("a subscription whose secrets cannot be decrypted was loaded")
	}
	if _, ok := st.Get("sub_other"); !ok || st.Len() != 1 {
		t.Errorf("the readable record was not loaded: %d held", st.Len())
	}
	byID := map[string]string{}
	for _, e := range logs.All() {
		byID[e.ContextMap()["subscription"].(string)] = e.Message
	}
	if msg := byID[sealed.ID]; !strings.Contains(msg, "HERALD_MASTER_KEY") {
		t.Errorf("wrong key logged as %q", msg)
	}
	for _, id := range []string{"sub_bad", "sub_mismatch", "sub_empty"} {
		if _, ok := byID[id]; !ok {
			t.Errorf("%s skipped without a log", id)
		}
	}
}

// The apply rule, fed records directly: the outcome must not depend on
// whether an instance reads the whole log or a compacted one.
func TestStoreApplyRule(t *testing.T) {
	k := kafka(t)
	c := newTestCipher(t)
	rec := func(id string, version int64, desc string, repair bool) *kgo.Record {
		s := &Subscription{ID: id, URL: "https://x.example", Version: version, Description: desc}
		v, err := encodeRecord(s, c)
		if err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Key: []byte(id), Value: v}
		if repair {
			r.Headers = []kgo.RecordHeader{{Key: HeaderRepair, Value: []byte("1")}}
		}
		return r
	}
	tomb := func(id string) *kgo.Record { return &kgo.Record{Key: []byte(id)} }
	cl := newClient(t, k.seeds, kgo.DefaultProduceTopic(k.topic))
	if err := cl.ProduceSync(ctx(t),
		// A compacted log: the first record seen for an id is not version 1.
		rec("sub_compacted", 7, "seven", false),
		// Of two records built on version 1, the first wins.
		rec("sub_race", 1, "one", false),
		rec("sub_race", 2, "winner", false),
		rec("sub_race", 2, "loser", false),
		// A repair restating the current version applies.
		rec("sub_repaired", 3, "seen first after compaction", false),
		rec("sub_repaired", 3, "restated", true),
		// A stale repair does not.
		rec("sub_stale_repair", 4, "four", false),
		rec("sub_stale_repair", 3, "three", true),
		// After a tombstone, the id stays deleted.
		rec("sub_deleted", 1, "one", false),
		tomb("sub_deleted"),
		rec("sub_deleted", 2, "late update", false),
		// A tombstone for an unknown id is harmless.
		tomb("sub_never"),
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	st := start(t, k, c)
	want := map[string]string{
		"sub_compacted":    "seven",
		"sub_race":         "winner",
		"sub_repaired":     "restated",
		"sub_stale_repair": "four",
	}
	for id, desc := range want {
		if s, ok := st.Get(id); !ok || s.Description != desc {
			t.Errorf("%s = %v", id, s)
		}
	}
	if st.Len() != len(want) {
		t.Errorf("%d held, want %d", st.Len(), len(want))
	}
}

func TestStoreRunFailsWithoutTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := NewStore(c.ListenAddrs(), "missing", newTestCipher(t))
	if err := st.Run(ctx(t)); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Run on a missing topic = %v, want an error naming it", err)
	}
	if err := st.WaitReady(ctx(t)); !errors.Is(err, ErrStopped) {
		t.Errorf("WaitReady after Run failed = %v, want ErrStopped", err)
	}
	if err := st.Run(ctx(t)); err == nil {
		t.Error("second Run did not fail")
	}
}

func TestEnsureTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	adm := kadm.NewClient(newClient(t, c.ListenAddrs()))
	for range 2 { // idempotent
		if err := EnsureTopic(ctx(t), adm, "subs"); err != nil {
			t.Fatal(err)
		}
	}
	td, err := adm.ListTopics(ctx(t), "subs")
	if err != nil {
		t.Fatal(err)
	}
	if p := len(td["subs"].Partitions); p != 1 {
		t.Errorf("%d partitions", p)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx(t), "subs")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := cfgs.On("subs", nil)
	var policy string
	for _, kv := range rc.Configs {
		if kv.Key == "cleanup.policy" {
			policy = kv.MaybeValue()
		}
	}
	if policy != "compact" {
		t.Errorf("cleanup.policy = %q", policy)
	}

	if _, err := adm.CreateTopic(ctx(t), 3, 1, nil, "wide"); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(ctx(t), adm, "wide"); err == nil || !strings.Contains(err.Error(), "3 partitions") {
		t.Errorf("EnsureTopic on a 3-partition topic = %v", err)
	}
	if _, err := adm.CreateTopic(ctx(t), 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, "deleting"); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(ctx(t), adm, "deleting"); err == nil || !strings.Contains(err.Error(), "cleanup.policy=delete") {
		t.Errorf("EnsureTopic on a delete-policy topic = %v", err)
	}
}

// A record this instance cannot read stops it serving the subscription
// rather than leaving it on an older version, until a readable record
// comes.
func TestStoreUnreadableUpdateDropsSubscription(t *testing.T) {
	k := kafka(t)
	c := newTestCipher(t)
	st := start(t, k, c)
	var mu sync.Mutex
	var told []string
	st.Subscribe(func(old, new *Subscription) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, fmt.Sprintf("%v→%v", old != nil, new != nil))
	})
	sub, _, err := st.Create(ctx(t), newSub())
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, k.seeds, kgo.DefaultProduceTopic(k.topic))
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Key: []byte(sub.ID), Value: []byte(`{"id": 5`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the subscription is dropped", func() bool { _, ok := st.Get(sub.ID); return !ok })
	if m := st.Match("orders", "order.created"); len(m) != 0 {
		t.Error("a dropped subscription still matches")
	}
	if _, err := st.Update(ctx(t), sub.ID, 0, func(*Subscription) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of a dropped subscription = %v, want ErrNotFound", err)
	}

	next := sub.clone()
	next.Version, next.Description = 3, "readable again"
	v, err := encodeRecord(next, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Key: []byte(sub.ID), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "it is back", func() bool { s, ok := st.Get(sub.ID); return ok && s.Description == "readable again" })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"false→true", "true→false", "false→true"}; !slices.Equal(told, want) {
		t.Errorf("notifications %v, want %v", told, want)
	}
}
