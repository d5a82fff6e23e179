package retry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// fakeSubmitter stands in for the dispatcher: it records each job and when
// it arrived, and finishes it at once unless told to hold it.
type fakeSubmitter struct {
	mu     sync.Mutex
	got    []submitted
	hold   map[string]bool // delivery ids whose Done waits for release
	held   []*dispatch.Job
	notify chan struct{}
}

type submitted struct {
	job *dispatch.Job
	at  time.Time
}

func newFakeSubmitter(hold ...string) *fakeSubmitter {
	f := &fakeSubmitter{hold: map[string]bool{}, notify: make(chan struct{}, 1)}
	for _, id := range hold {
		f.hold[id] = true
	}
	return f
}

func (f *fakeSubmitter) Submit(_ context.Context, j *dispatch.Job) error {
	at := time.Now()
	f.mu.Lock()
	f.got = append(f.got, submitted{j, at})
	hold := f.hold[j.DeliveryID]
	if hold {
		f.held = append(f.held, j)
	}
	f.mu.Unlock()
	if !hold {
		j.Done(dispatch.Result{Step: dispatch.Delivered})
	}
	select {
	case f.notify <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeSubmitter) release() {
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, j := range held {
		j.Done(dispatch.Result{Step: dispatch.Delivered})
	}
}

func (f *fakeSubmitter) snapshot() []submitted {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// waitFor waits until n jobs arrived and returns them.
func (f *fakeSubmitter) waitFor(t *testing.T, n int, timeout time.Duration) []submitted {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := f.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-f.notify:
		case <-deadline:
			t.Fatalf("%d jobs submitted after %v, want %d: %v", len(f.snapshot()), timeout, n, ids(f.snapshot()))
		}
	}
}

func ids(s []submitted) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.job.DeliveryID
	}
	return out
}

type fakeSubs map[string]*subscription.Subscription

func (s fakeSubs) Get(id string) (*subscription.Subscription, bool) {
	sub, ok := s[id]
	return sub, ok
}

type fakeOutcomes struct {
	mu   sync.Mutex
	recs []*outcome.Record
}

func (o *fakeOutcomes) Write(_ context.Context, r *outcome.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recs = append(o.recs, r)
}

func (o *fakeOutcomes) snapshot() []*outcome.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.recs)
}

// fixture is one cluster with sub-second tiers and the pieces a consumer
// needs.
type fixture struct {
	addrs    []string
	cl       *kgo.Client // producing, manual partitions
	sched    *Schedule
	producer *Producer
	subs     fakeSubs
	outcomes *fakeOutcomes
}

func newFixture(t *testing.T, tiers string, partitions int32) *fixture {
	t.Helper()
	addrs := kafka(t)
	s, err := ParseSchedule(tiers)
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ensureTopics(t, cl, s, partitions)
	return &fixture{
		addrs:    addrs,
		cl:       cl,
		sched:    s,
		producer: NewProducer(cl, s),
		subs:     fakeSubs{"sub_1": {ID: "sub_1"}, "sub_2": {ID: "sub_2"}},
		outcomes: &fakeOutcomes{},
	}
}

// start runs a consumer until the returned stop is called (or the test
// ends) and Run has returned.
func (f *fixture) start(t *testing.T, sub Submitter, tune ...func(*ConsumerConfig)) (*Consumer, func()) {
	t.Helper()
	cfg := ConsumerConfig{
		ClientOpts:     []kgo.Opt{kgo.SeedBrokers(f.addrs...), kgo.FetchMaxWait(50 * time.Millisecond)},
		Schedule:       f.sched,
		Submitter:      sub,
		Subscriptions:  f.subs,
		Producer:       f.producer,
		Outcomes:       f.outcomes,
		CommitInterval: 50 * time.Millisecond,
		DrainTimeout:   2 * time.Second,
	}
	for _, fn := range tune {
		fn(&cfg)
	}
	c, err := NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// retryRecord is a well-formed retry record for partition p of the tier.
func (f *fixture) retryRecord(tier time.Duration, p int32, id, sub string, due time.Time) *kgo.Record {
	h := Headers{
		DeliveryID:     id,
		EventID:        "evt_" + id,
		EventType:      "order.created",
		SubscriptionID: sub,
		Attempt:        2,
		DueAt:          due,
		FirstAttemptAt: due.Add(-tier),
		Source:         "orders/0/7",
	}
	return &kgo.Record{
		Topic:     TopicName(DefaultPrefix, tier),
		Partition: p,
		Key:       []byte(sub),
		Value:     []byte(`{"id":"` + id + `"}`),
		Headers:   h.Encode(),
	}
}

func (f *fixture) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	if err := f.cl.ProduceSync(testContext(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func dueOf(t *testing.T, j *dispatch.Job, dues map[string]time.Time) time.Time {
	t.Helper()
	due, ok := dues[j.DeliveryID]
	if !ok {
		t.Fatalf("unexpected delivery %s", j.DeliveryID)
	}
	return due
}

// Records due within a second, in two sub-second tiers, some out of order
// within a partition: none is submitted before its due time.
func TestConsumerNeverEarly(t *testing.T) {
	f := newFixture(t, "200ms,500ms", 2)
	sub := newFakeSubmitter()
	c, _ := f.start(t, sub)

	dues := map[string]time.Time{}
	var recs []*kgo.Record
	add := func(tier time.Duration, p int32, id string, due time.Time) {
		due = time.UnixMilli(due.UnixMilli())
		dues[id] = due
		recs = append(recs, f.retryRecord(tier, p, id, "sub_1", due))
	}
	for burst := 0; burst < 3; burst++ {
		now := time.Now()
		for i := 0; i < 8; i++ {
			tier := f.sched.Tiers()[i%2]
			add(tier, int32(i%4/2), fmt.Sprintf("d%d%d", burst, i), now.Add(tier).Add(time.Duration(i)*3*time.Millisecond))
		}
		// Out of order within one partition: the later due first.
		add(200*time.Millisecond, 1, fmt.Sprintf("d%d8", burst), now.Add(700*time.Millisecond))
		add(200*time.Millisecond, 1, fmt.Sprintf("d%d9", burst), now.Add(250*time.Millisecond))
		f.produce(t, recs...)
		recs = recs[:0]
		time.Sleep(100 * time.Millisecond)
	}

	sawPaused := false
	deadline := time.After(10 * time.Second)
	for len(sub.snapshot()) < len(dues) {
		for _, s := range c.Stats() {
			if s.PausedPartitions > 0 {
				sawPaused = true
			}
		}
		select {
		case <-sub.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d submitted", len(sub.snapshot()), len(dues))
		}
	}
	for _, s := range sub.snapshot() {
		due := dueOf(t, s.job, dues)
		if s.at.Before(due) {
			t.Errorf("%s submitted %v before its due time", s.job.DeliveryID, due.Sub(s.at))
		}
	}
	if !sawPaused {
		t.Error("no partition was ever paused while waiting")
	}
	// The consumer counts a record once Submit has returned, which may be
	// a moment after the submitter saw it.
	submitted := func() (n uint64) {
		for _, s := range c.Stats() {
			n += s.Submitted
		}
		return n
	}
	for end := time.Now().Add(5 * time.Second); submitted() < uint64(len(dues)) && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	for _, s := range c.Stats() {
		if s.Early != 0 {
			t.Errorf("tier %v: Early = %d", s.Tier, s.Early)
		}
	}
	if n := submitted(); n != uint64(len(dues)) {
		t.Errorf("Submitted = %d, want %d", n, len(dues))
	}
}

// A partition waiting for a far due time holds up neither the other
// partition of its tier nor another tier.
func TestConsumerPausedPartitionDoesNotBlockOthers(t *testing.T) {
	f := newFixture(t, "200ms,500ms", 2)
	sub := newFakeSubmitter()
	c, _ := f.start(t, sub)

	now := time.Now()
	far := now.Add(time.Minute)
	f.produce(t,
		f.retryRecord(500*time.Millisecond, 0, "d1", "sub_1", far),
		f.retryRecord(500*time.Millisecond, 0, "d2", "sub_1", now), // behind the far head: waits for it
		f.retryRecord(500*time.Millisecond, 1, "d3", "sub_1", now.Add(300*time.Millisecond)),
		f.retryRecord(200*time.Millisecond, 0, "d4", "sub_1", now.Add(200*time.Millisecond)),
		f.retryRecord(200*time.Millisecond, 1, "d5", "sub_1", now.Add(100*time.Millisecond)),
	)
	got := sub.waitFor(t, 3, 10*time.Second)
	if g := ids(got); !sameSet(g, []string{"d3", "d4", "d5"}) {
		t.Fatalf("submitted %v, want d3, d4, d5", g)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(sub.snapshot()); n != 3 {
		t.Fatalf("%d submitted: the far record or the one behind it went early", n)
	}
	st := c.Stats()
	if st[1].Tier != 500*time.Millisecond || st[1].PausedPartitions != 1 || st[1].Queued != 2 {
		t.Errorf("500ms tier stats = %+v, want one paused partition holding 2 records", st[1])
	}
	if st[0].PausedPartitions != 0 || st[0].Queued != 0 {
		t.Errorf("200ms tier stats = %+v, want nothing paused or queued", st[0])
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A job handed to a tier by the producer comes back from the consumer as the
// same delivery, one attempt later.
func TestConsumerRoundTrip(t *testing.T) {
	f := newFixture(t, "200ms,500ms", 1)
	sub := newFakeSubmitter()
	f.start(t, sub)

	j := testJob()
	j.Subscription = f.subs["sub_1"]
	attempted := time.Now()
	if err := f.producer.Retry(testContext(t), j, dispatch.Retry{LastStatus: 502, AttemptedAt: attempted}); err != nil {
		t.Fatal(err)
	}
	got := sub.waitFor(t, 1, 10*time.Second)[0].job
	ev := got.Event
	switch {
	case got.DeliveryID != j.DeliveryID, got.Attempt != 2, got.Tier != "200ms",
		got.Subscription != f.subs["sub_1"], got.Replay,
		!got.FirstAttemptAt.Equal(time.UnixMilli(attempted.UnixMilli())),
		got.OriginTraceParent != producerTrace:
		t.Errorf("job = %+v", got)
	}
	want := j.Event
	switch {
	case ev.ID != want.ID, ev.Type != want.Type, !ev.Time.Equal(want.Time),
		ev.Topic != "orders", ev.Partition != 3, ev.Offset != 42,
		string(ev.Key) != "order-7", string(ev.Value) != string(want.Value),
		ev.ContentType != "application/json", ev.TraceParent != producerTrace:
		t.Errorf("event = %+v", ev)
	}
	var hs []string
	for _, h := range ev.Headers {
		hs = append(hs, h.Key+"="+string(h.Value))
	}
	if strings.Join(hs, ",") != "ce_id=evt_1,ce_type=order.created,content-type=application/json" {
		t.Errorf("original headers = %v", hs)
	}
}

// Corrupt records go to herald.dlq with the reason and are finished; the
// partition moves on to the next record.
func TestConsumerCorruptRecordToDLQ(t *testing.T) {
	f := newFixture(t, "200ms", 1)
	sub := newFakeSubmitter()
	c, _ := f.start(t, sub)

	now := time.Now()
	tier := 200 * time.Millisecond
	noID := f.retryRecord(tier, 0, "d1", "sub_1", now)
	noID.Headers = slices.DeleteFunc(slices.Clone(noID.Headers), func(h kgo.RecordHeader) bool { return h.Key == HeaderDeliveryID })
	badAttempt := f.retryRecord(tier, 0, "d2", "sub_1", now)
	setHeader(badAttempt, HeaderAttempt, "abc")
	badSource := f.retryRecord(tier, 0, "d3", "sub_1", now)
	setHeader(badSource, HeaderSource, "nowhere")
	noHeaders := &kgo.Record{Topic: TopicName(DefaultPrefix, tier), Value: []byte("x")}
	f.produce(t, noID, badAttempt, badSource, noHeaders, f.retryRecord(tier, 0, "d5", "sub_1", now))

	if got := sub.waitFor(t, 1, 10*time.Second); got[0].job.DeliveryID != "d5" {
		t.Fatalf("submitted %v, want d5", ids(got))
	}
	dlq := readAll(t, f.addrs, "herald.dlq")
	want := []string{
		"corrupt_record: herald-delivery-id is missing",
		`corrupt_record: herald-attempt "abc" is not a count`,
		`corrupt_record: herald-source "nowhere" is not topic/partition/offset`,
		"corrupt_record: herald-delivery-id is missing",
	}
	if len(dlq) != len(want) {
		t.Fatalf("%d dead letters, want %d", len(dlq), len(want))
	}
	for i, r := range dlq {
		reason, _ := header(r, HeaderDLQReason)
		src, _ := header(r, HeaderRetrySource)
		if reason != want[i] || src != fmt.Sprintf("herald.retry.200ms/0/%d", i) {
			t.Errorf("dead letter %d: reason %q source %q", i, reason, src)
		}
	}
	if v, _ := header(dlq[1], HeaderAttempt); v != "abc" || string(dlq[1].Value) != `{"id":"d2"}` {
		t.Errorf("dead letter 1 does not keep the record as it was: %v %q", headerList(dlq[1]), dlq[1].Value)
	}
	if n := c.Stats()[0].DeadLettered; n != 4 {
		t.Errorf("DeadLettered = %d, want 4", n)
	}
	outs := f.outcomes.snapshot()
	if len(outs) != 4 || outs[1].State != outcome.DeadLettered || outs[1].DeliveryID != "d2" || outs[1].Error != want[1] {
		t.Errorf("outcomes = %+v", outs)
	}
}

func setHeader(r *kgo.Record, key, value string) {
	r.Headers = slices.Clone(r.Headers)
	for i := range r.Headers {
		if r.Headers[i].Key == key {
			r.Headers[i].Value = []byte(value)
		}
	}
}

// A subscription deleted while its retry waited: dropped with an outcome,
// never submitted.
func TestConsumerSubscriptionDeleted(t *testing.T) {
	f := newFixture(t, "200ms", 1)
	sub := newFakeSubmitter()
	c, _ := f.start(t, sub)
	now := time.Now()
	f.produce(t,
		f.retryRecord(200*time.Millisecond, 0, "d1", "sub_gone", now),
		f.retryRecord(200*time.Millisecond, 0, "d2", "sub_1", now),
	)
	if got := sub.waitFor(t, 1, 10*time.Second); got[0].job.DeliveryID != "d2" {
		t.Fatalf("submitted %v, want d2", ids(got))
	}
	outs := f.outcomes.snapshot()
	if len(outs) != 1 || outs[0].State != outcome.SubscriptionDeleted || outs[0].DeliveryID != "d1" ||
		outs[0].SubscriptionID != "sub_gone" || outs[0].Attempt != 2 || outs[0].Tier != "200ms" {
		t.Fatalf("outcomes = %+v", outs)
	}
	if n := c.Stats()[0].SubscriptionDeleted; n != 1 {
		t.Errorf("SubscriptionDeleted = %d", n)
	}
}

// Offsets are committed only up to the first unfinished record; a restart
// redelivers from there and nothing before it.
func TestConsumerCommitsFinishedOnly(t *testing.T) {
	f := newFixture(t, "200ms", 1)
	now := time.Now()
	var recs []*kgo.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, f.retryRecord(200*time.Millisecond, 0, fmt.Sprintf("d%d", i), "sub_1", now))
	}
	f.produce(t, recs...)

	first := newFakeSubmitter("d2")
	_, stop := f.start(t, first, func(c *ConsumerConfig) { c.DrainTimeout = 200 * time.Millisecond })
	first.waitFor(t, 5, 10*time.Second)
	stop()
	first.release() // too late: the partition is gone, its offsets are not touched

	second := newFakeSubmitter()
	_, stop = f.start(t, second)
	if got := ids(second.waitFor(t, 3, 10*time.Second)); !slices.Equal(got, []string{"d2", "d3", "d4"}) {
		t.Fatalf("after restart: %v, want d2 d3 d4", got)
	}
	time.Sleep(200 * time.Millisecond) // a commit tick
	stop()

	third := newFakeSubmitter()
	f.start(t, third)
	f.produce(t, f.retryRecord(200*time.Millisecond, 0, "marker", "sub_1", time.Now()))
	if got := ids(third.waitFor(t, 1, 10*time.Second)); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("after the second restart: %v, want only the new record", got)
	}
}

// Shutdown waits for jobs in flight within the drain timeout and commits
// them.
func TestConsumerDrainsOnShutdown(t *testing.T) {
	f := newFixture(t, "200ms", 1)
	f.produce(t, f.retryRecord(200*time.Millisecond, 0, "d0", "sub_1", time.Now()))

	first := newFakeSubmitter("d0")
	_, stop := f.start(t, first, func(c *ConsumerConfig) { c.CommitInterval = time.Hour })
	first.waitFor(t, 1, 10*time.Second)
	go func() {
		time.Sleep(100 * time.Millisecond)
		first.release()
	}()
	stop()

	second := newFakeSubmitter()
	f.start(t, second)
	f.produce(t, f.retryRecord(200*time.Millisecond, 0, "marker", "sub_1", time.Now()))
	if got := ids(second.waitFor(t, 1, 10*time.Second)); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("after restart: %v, want only the new record", got)
	}
}

// A partition revoked by a rebalance is handed over in order: the jobs in
// flight finish, their offsets are committed, and the new owner does not
// deliver them again.
func TestConsumerRevokeDrainsAndCommits(t *testing.T) {
	f := newFixture(t, "200ms", 2)
	now := time.Now()
	f.produce(t,
		f.retryRecord(200*time.Millisecond, 0, "a0", "sub_1", now),
		f.retryRecord(200*time.Millisecond, 0, "a1", "sub_1", now),
		f.retryRecord(200*time.Millisecond, 1, "b0", "sub_1", now),
		f.retryRecord(200*time.Millisecond, 1, "b1", "sub_1", now),
	)
	first := newFakeSubmitter("a1", "b1")
	f.start(t, first, func(c *ConsumerConfig) { c.DrainTimeout = 10 * time.Second })
	first.waitFor(t, 4, 10*time.Second)

	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(500 * time.Millisecond) // the rebalance is waiting for these
		first.release()
	}()
	second := newFakeSubmitter()
	f.start(t, second)
	<-released

	// Wait until the second consumer owns a partition: its marker arrives.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		f.produce(t,
			f.retryRecord(200*time.Millisecond, 0, fmt.Sprintf("m0-%d", i), "sub_1", time.Now()),
			f.retryRecord(200*time.Millisecond, 1, fmt.Sprintf("m1-%d", i), "sub_1", time.Now()),
		)
		time.Sleep(300 * time.Millisecond)
		if len(second.snapshot()) > 0 || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, s := range second.snapshot() {
		if !strings.HasPrefix(s.job.DeliveryID, "m") {
			t.Errorf("the new owner delivered %s again", s.job.DeliveryID)
		}
	}
	if len(second.snapshot()) == 0 {
		t.Fatal("the second consumer never got a partition")
	}
	seen := map[string]int{}
	for _, s := range append(first.snapshot(), second.snapshot()...) {
		seen[s.job.DeliveryID]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// Due times are absolute: an instance whose clock is behind delivers late by
// its skew, never early.
func TestConsumerClockBehindDeliversLate(t *testing.T) {
	f := newFixture(t, "200ms", 1)
	sub := newFakeSubmitter()
	const skew = 400 * time.Millisecond
	f.start(t, sub, func(c *ConsumerConfig) { c.Now = func() time.Time { return time.Now().Add(-skew) } })
	due := time.UnixMilli(time.Now().Add(100 * time.Millisecond).UnixMilli())
	f.produce(t, f.retryRecord(200*time.Millisecond, 0, "d1", "sub_1", due))
	got := sub.waitFor(t, 1, 10*time.Second)[0]
	if late := got.at.Sub(due); late < skew {
		t.Errorf("delivered %v after its due time, want at least the skew %v", late, skew)
	}
}
