package app_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/kafka"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
)

// env is one isolated herald deployment for a test: its own topic prefix,
// consumer groups and source topic on the shared broker and Redis.
type env struct {
	t       *testing.T
	cfg     config.Config
	source  string
	brokers []string
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	brokers := testkit.Kafka(t)
	// Every topic of this deployment shares the prefix, so the real broker
	// loses them all when the test ends.
	prefix := testkit.TopicPrefix(t)
	name := strings.TrimSuffix(prefix, ".")
	source := prefix + "orders"
	testkit.CreateTopic(t, brokers, source, partitions)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Group = name + "-group"
	cfg.Kafka.RetryGroup = name + "-retry"
	cfg.Redis.URL = testkit.Redis(t)
	cfg.Sources = []config.Source{{Topic: source}}
	cfg.Secrets.MasterKey = base64.StdEncoding.EncodeToString(key)
	cfg.API.Tokens = []string{"test-token-0123456789abcdef"}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Delivery.AllowPrivateNetworks = true
	cfg.Topics.Prefix = prefix
	cfg.Topics.Partitions = 3
	cfg.Retry.Tiers = config.Durations{200 * time.Millisecond, 500 * time.Millisecond, time.Second}
	return &env{t: t, cfg: cfg, source: source, brokers: brokers}
}

// instance is one running herald.
type instance struct {
	app       *app.App
	cancel    context.CancelFunc
	done      chan error
	delivered atomic.Int64
}

func (e *env) start() *instance {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan *app.App, 1)
	go func() {
		in.done <- app.Run(ctx, e.cfg, app.Options{
			OnReady: func(a *app.App) { ready <- a },
			Observe: func(_ context.Context, _ *dispatch.Job, r *outcome.Record) {
				if r.State == "delivered" {
					in.delivered.Add(1)
				}
			},
		})
	}()
	select {
	case in.app = <-ready:
	case err := <-in.done:
		e.t.Fatalf("herald stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		e.t.Fatal("herald not ready after 60s")
	}
	e.t.Cleanup(func() { in.stop(e.t) })
	return in
}

// stop is what SIGTERM does: cancel the run context and wait for the drain.
func (in *instance) stop(t *testing.T) {
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("herald returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("herald did not stop within 60s")
	}
}

func (e *env) subscribe(in *instance, recv *testkit.Receiver, path string, types ...string) (*subscription.Subscription, *webhook.Verifier) {
	e.t.Helper()
	sub, secret, err := in.app.Subscriptions().Create(context.Background(), &subscription.Subscription{
		URL:        recv.URL() + path,
		Topics:     []string{e.source},
		EventTypes: types,
	})
	if err != nil {
		e.t.Fatalf("create subscription: %v", err)
	}
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return sub, v
}

var eventTypes = []string{"order.created", "order.paid", "payment.failed", "user.signup"}

// produce writes n events numbered from first, cycling through eventTypes,
// with a plain producer: a ce_id header and a JSON body, nothing of herald's.
func (e *env) produce(first, n int) {
	e.t.Helper()
	cl := testkit.Client(e.t, e.brokers, kgo.DefaultProduceTopic(e.source))
	recs := make([]*kgo.Record, 0, n)
	for i := first; i < first+n; i++ {
		typ := eventTypes[i%len(eventTypes)]
		value, _ := json.Marshal(map[string]any{"type": typ, "n": i})
		recs = append(recs, &kgo.Record{
			Key:     []byte(fmt.Sprint(i)),
			Value:   value,
			Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(fmt.Sprintf("evt-%d", i))}},
		})
	}
	testkit.Produce(e.t, cl, recs...)
}

// delivery is what a receiver saw, decoded.
type delivery struct {
	path, id, typ string
	n             int
}

func decode(t *testing.T, r testkit.Request) delivery {
	t.Helper()
	var body struct {
		Type string `json:"type"`
		Data struct {
			N int `json:"n"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("body is not the envelope: %v: %s", err, r.Body)
	}
	return delivery{path: r.Path, id: r.Header.Get(webhook.HeaderID), typ: body.Type, n: body.Data.N}
}

// TestDeliversEveryMatchingEvent is the core acceptance: 1,000 events of
// mixed types, three subscriptions of which two match; the receiver gets
// exactly the expected deliveries, signed, with deterministic ids, and
// herald.outcomes holds one valid record per delivery.
func TestDeliversEveryMatchingEvent(t *testing.T) {
	e := newEnv(t, 6)
	recv := testkit.NewReceiver(t)
	in := e.start()
	orders, ordersV := e.subscribe(in, recv, "/orders", "order.*")
	payments, paymentsV := e.subscribe(in, recv, "/payments", "payment.failed")
	invoices, _ := e.subscribe(in, recv, "/invoices", "invoice.*")

	const n = 1000
	start := time.Now()
	e.produce(0, n)
	want := n/2 + n/4
	recv.WaitFor(t, want, 90*time.Second)
	elapsed := time.Since(start)
	t.Logf("%d deliveries in %v (%.0f/s)", want, elapsed, float64(want)/elapsed.Seconds())

	verifiers := map[string]*webhook.Verifier{"/orders": ordersV, "/payments": paymentsV}
	subs := map[string]string{"/orders": orders.ID, "/payments": payments.ID, "/invoices": invoices.ID}
	seen := make(map[string]bool)
	perPath := make(map[string]int)
	for _, r := range recv.Requests() {
		d := decode(t, r)
		perPath[d.path]++
		if err := verifiers[d.path].Verify(r.Header, r.Body); err != nil {
			t.Fatalf("signature of %s does not verify: %v", d.id, err)
		}
		if wantID := event.DeliveryID(fmt.Sprintf("evt-%d", d.n), subs[d.path]); d.id != wantID {
			t.Fatalf("webhook-id %s, want the deterministic %s", d.id, wantID)
		}
		if seen[d.id] {
			t.Fatalf("delivery %s received twice", d.id)
		}
		seen[d.id] = true
		if want := eventTypes[d.n%len(eventTypes)]; d.typ != want {
			t.Fatalf("event %d has type %s, want %s", d.n, d.typ, want)
		}
	}
	if perPath["/orders"] != n/2 || perPath["/payments"] != n/4 || perPath["/invoices"] != 0 {
		t.Fatalf("deliveries per subscription %v, want orders %d payments %d invoices 0", perPath, n/2, n/4)
	}

	// One outcome record per delivery, each valid against the schema's
	// required fields.
	outcomes := readOutcomes(t, e, func(r outcome.Record) bool { return r.State == "delivered" }, want, true)
	for id := range seen {
		r, ok := outcomes[id]
		if !ok {
			t.Fatalf("no outcome for delivery %s", id)
		}
		if r.EventID == "" || r.SubscriptionID == "" || r.Topic != e.source || r.Attempt != 1 || r.HTTPStatus != 200 || r.AttemptedAt.IsZero() {
			t.Fatalf("incomplete outcome %+v", r)
		}
	}
}

// readOutcomes reads the outcome topic until want records pass keep, and
// returns them by delivery id; it fails on a second record for one id when
// unique is set.
func readOutcomes(t *testing.T, e *env, keep func(outcome.Record) bool, want int, unique bool) map[string]outcome.Record {
	t.Helper()
	cl := testkit.Client(t, e.brokers, kgo.ConsumeTopics(e.cfg.Topics.Prefix+"outcomes"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := make(map[string]outcome.Record)
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("read %d outcome records, want %d", len(got), want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(rec *kgo.Record) {
			var r outcome.Record
			if err := json.Unmarshal(rec.Value, &r); err != nil {
				t.Fatalf("outcome is not JSON: %v", err)
			}
			if string(rec.Key) != r.DeliveryID {
				t.Fatalf("outcome keyed %q, want its delivery id %q", rec.Key, r.DeliveryID)
			}
			if !keep(r) {
				return
			}
			if _, dup := got[r.DeliveryID]; dup && unique {
				t.Fatalf("two %s outcomes for %s", r.State, r.DeliveryID)
			}
			got[r.DeliveryID] = r
		})
	}
	return got
}

// TestRestartLosesNothingAndSendsNothingTwice stops herald the way SIGTERM
// does in the middle of a stream, restarts it, and checks every event is
// delivered exactly once; then a new consumer group re-reads the whole
// topic and Redis suppresses every re-delivery.
func TestRestartLosesNothingAndSendsNothingTwice(t *testing.T) {
	e := newEnv(t, 4)
	recv := testkit.NewReceiver(t)
	recv.Respond(testkit.Slow(2*time.Millisecond, testkit.Statuses(200))) // keep deliveries in flight at the stop
	first := e.start()
	e.subscribe(first, recv, "/all")
	const n = 600
	e.produce(0, n)
	testkit.Eventually(t, 60*time.Second, func() bool { return recv.Count() >= n/4 }, "a quarter delivered before the stop")
	first.stop(t)
	if recv.Count() >= n {
		t.Log("everything was delivered before the stop; the restart checks nothing new")
	}

	second := e.start()
	recv.WaitFor(t, n, 90*time.Second)
	ids := ids(recv)
	if len(ids) != n {
		t.Fatalf("%d distinct deliveries, want %d", len(ids), n)
	}
	if dups := recv.Count() - len(ids); dups != 0 {
		t.Fatalf("%d duplicates after a graceful stop, want 0", dups)
	}
	second.stop(t)

	// A fresh group re-reads everything: Redis must suppress all of it.
	e.cfg.Kafka.Group += "-again"
	// The second run may already have suppressed a few events whose
	// offsets the first run had not committed: count only the third run's.
	since := time.Now()
	third := e.start()
	dupes := readOutcomes(t, e, func(r outcome.Record) bool { return r.State == "duplicate" && r.AttemptedAt.After(since) }, n, false)
	if len(dupes) != n {
		t.Fatalf("%d duplicate outcomes, want %d", len(dupes), n)
	}
	if got := recv.Count(); got != n {
		t.Fatalf("receiver saw %d requests after the re-read, want still %d", got, n)
	}
	third.stop(t)
}

// TestTwoInstancesShareTheWork runs two instances in one group: together
// they deliver every event once, and both take part.
func TestTwoInstancesShareTheWork(t *testing.T) {
	e := newEnv(t, 6)
	recv := testkit.NewReceiver(t)
	a := e.start()
	b := e.start()
	e.subscribe(a, recv, "/all")
	// Both instances must know the subscription before events flow.
	testkit.Eventually(t, 10*time.Second, func() bool { return b.app.Subscriptions().Len() == 1 }, "second instance sees the subscription")
	// And both must own partitions: wait for the rebalance to settle.
	adm := kadm.NewClient(testkit.Client(t, e.brokers))
	testkit.Eventually(t, 60*time.Second, func() bool {
		groups, err := adm.DescribeGroups(context.Background(), e.cfg.Kafka.Group)
		if err != nil {
			return false
		}
		g := groups[e.cfg.Kafka.Group]
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			assigned, ok := m.Assigned.AsConsumer()
			if !ok || len(assigned.Topics) == 0 {
				return false
			}
		}
		return true
	}, "both instances own partitions")
	const n = 1000
	e.produce(0, n)
	recv.WaitFor(t, n, 90*time.Second)
	if got := len(ids(recv)); got != n {
		t.Fatalf("%d distinct deliveries, want %d", got, n)
	}
	if dups := recv.Count() - n; dups != 0 {
		t.Fatalf("%d duplicates, want 0", dups)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return a.delivered.Load()+b.delivered.Load() == n }, "every delivery observed")
	if a.delivered.Load() == 0 || b.delivered.Load() == 0 {
		t.Fatalf("one instance did all the work: %d and %d", a.delivered.Load(), b.delivered.Load())
	}
}

// TestSubscriptionChangesApplyLive creates a subscription while herald runs
// and then deletes it: events after the create arrive, events after the
// delete do not.
func TestSubscriptionChangesApplyLive(t *testing.T) {
	e := newEnv(t, 2)
	recv := testkit.NewReceiver(t)
	in := e.start()
	// A sentinel subscription tells when herald has passed an event.
	e.subscribe(in, recv, "/sentinel", "user.signup")

	sub, _ := e.subscribe(in, recv, "/live", "order.created")
	e.produce(0, 4) // one order.created (0), one user.signup (3)
	recv.WaitFor(t, 2, 30*time.Second)
	if got := countPath(recv, "/live"); got != 1 {
		t.Fatalf("new subscription got %d deliveries, want 1", got)
	}

	if err := in.app.Subscriptions().Delete(context.Background(), sub.ID); err != nil {
		t.Fatal(err)
	}
	e.produce(4, 4) // order.created (4), user.signup (7)
	testkit.Eventually(t, 30*time.Second, func() bool { return countPath(recv, "/sentinel") == 2 }, "sentinel passed the second batch")
	if got := countPath(recv, "/live"); got != 1 {
		t.Fatalf("deleted subscription got %d deliveries, want still 1", got)
	}
}

// ids is the set of webhook-ids the receiver acknowledged.
func ids(r *testkit.Receiver) map[string]bool {
	out := make(map[string]bool)
	for _, req := range r.Requests() {
		out[req.Header.Get(webhook.HeaderID)] = true
	}
	return out
}

func countPath(r *testkit.Receiver, path string) int {
	n := 0
	for _, req := range r.Requests() {
		if req.Path == path {
			n++
		}
	}
	return n
}

// TestStopClosesKeptAliveConnections: herald may run inside a longer-lived
// process (tests, the benchmark); once stopped it leaves no connection to a
// subscriber open.
func TestStopClosesKeptAliveConnections(t *testing.T) {
	e := newEnv(t, 1)
	recv := testkit.NewReceiver(t)
	in := e.start()
	e.subscribe(in, recv, "/kept")
	e.produce(0, 20)
	recv.WaitFor(t, 20, 60*time.Second)
	if n := recv.OpenConns(); n == 0 {
		t.Fatal("no connection open to the receiver after 20 deliveries; the test shows nothing")
	}
	in.stop(t)
	testkit.Eventually(t, 10*time.Second, func() bool { return recv.OpenConns() == 0 },
		"connections still open to the receiver after herald stopped")
}

// Outcomes go out on their own producer, lingering for larger batches; the
// client of retry hand-offs and dead letters keeps kafka.Linger.
func TestOutcomeClientLingers(t *testing.T) {
	cfg := config.Kafka{Brokers: []string{"127.0.0.1:1"}}
	cl, err := app.NewOutcomeClient(cfg, nil, "acme.outcomes")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.ProducerLinger); got != kafka.OutcomeLinger {
		t.Errorf("outcome producer linger = %v, want %v", got, kafka.OutcomeLinger)
	}
	if got := cl.OptValue(kgo.DefaultProduceTopic); got != "acme.outcomes" {
		t.Errorf("outcome producer topic = %v", got)
	}
	if kafka.OutcomeLinger <= kafka.Linger {
		t.Errorf("OutcomeLinger %v is not longer than Linger %v", kafka.OutcomeLinger, kafka.Linger)
	}
}

func TestRedisOptions(t *testing.T) {
	o, err := app.RedisOptions("redis://127.0.0.1:6379/2")
	if err != nil {
		t.Fatal(err)
	}
	if o.Protocol != 2 || o.DB != 2 || o.MaxRetries != 1 {
		t.Fatalf("protocol %d, db %d, max retries %d; want RESP2, db 2 and one retry", o.Protocol, o.DB, o.MaxRetries)
	}
	if o, err = app.RedisOptions("redis://127.0.0.1:6379/0?protocol=3"); err != nil || o.Protocol != 3 {
		t.Fatalf("protocol=3 in the URL gave %v, %v", o, err)
	}
	if _, err := app.RedisOptions("http://nope"); err == nil || !strings.Contains(err.Error(), "redis.url") {
		t.Fatalf("a bad URL gave %v, want a redis.url error", err)
	}
}
