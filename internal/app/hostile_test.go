package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
)

// Hostile destinations, events and subscribers, end to end: each gets a
// clear outcome, herald keeps running, the source offsets move on, and the
// events behind them are delivered.

// TestRefusedDestinationIsAnOutcome subscribes a loopback URL to an instance
// that does not allow private networks: the delivery is never sent, and ends
// as a failed attempt and a dead letter whose error names the refused
// address. An allow-list naming the address lets the next event through.
func TestRefusedDestinationIsAnOutcome(t *testing.T) {
	e := newEnv(t, 1)
	e.cfg.Delivery.AllowPrivateNetworks = false
	recv := testkit.NewReceiver(t)
	in := e.start()
	sub, _ := e.subscribe(in, recv, "/hook")
	e.produce(0, 1)

	want := "destination 127.0.0.1 is a loopback address; set delivery.allow_private_networks to allow it"
	recs := collectOutcomes(t, e, sub.ID, func(rs []outcome.Record) bool {
		return countStates(rs)[outcome.DeadLettered] == 1
	})
	states := countStates(recs)
	if states[outcome.Failed] != 1 || states[outcome.DeadLettered] != 1 || states[outcome.Delivered] != 0 {
		t.Errorf("outcomes %v, want one failed attempt and one dead letter", states)
	}
	for _, r := range recs {
		if (r.State == outcome.Failed || r.State == outcome.DeadLettered) && !strings.Contains(r.Error, want) {
			t.Errorf("%s outcome error %q does not name the refused address (%q)", r.State, r.Error, want)
		}
	}
	if n := recv.Count(); n != 0 {
		t.Fatalf("the refused destination received %d requests", n)
	}
	waitCommitted(t, e)
	in.stop(t)

	e.cfg.Delivery.AllowCIDRs = []string{"127.0.0.1/32"}
	e.start()
	e.produce(1, 1)
	reqs := recv.WaitFor(t, 1, 30*time.Second)
	if id := reqs[0].Header.Get(webhook.HeaderID); id != event.DeliveryID("evt-1", sub.ID) {
		t.Errorf("allow-listed delivery has id %s", id)
	}
}

// collectOutcomes reads herald.outcomes from the start and returns sub's
// records once done says they are complete; it fails t after 60s.
func collectOutcomes(t *testing.T, e *env, sub string, done func([]outcome.Record) bool) []outcome.Record {
	t.Helper()
	cl := testkit.Client(t, e.brokers, kgo.ConsumeTopics(e.cfg.Topics.Prefix+"outcomes"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []outcome.Record
	deadline := time.Now().Add(60 * time.Second)
	for !done(got) {
		if time.Now().After(deadline) {
			t.Fatalf("outcomes of %s incomplete after 60s: %v", sub, countStates(got))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(rec *kgo.Record) {
			var r outcome.Record
			if err := json.Unmarshal(rec.Value, &r); err != nil {
				t.Fatalf("outcome is not JSON: %v", err)
			}
			if r.SubscriptionID == sub {
				got = append(got, r)
			}
		})
	}
	return got
}

func countStates(rs []outcome.Record) map[outcome.State]int {
	m := make(map[outcome.State]int)
	for _, r := range rs {
		m[r.State]++
	}
	return m
}

// waitCommitted waits until the dispatcher's group has committed the whole
// source topic: every record is finished, none is stuck.
func waitCommitted(t *testing.T, e *env) {
	t.Helper()
	adm := kadm.NewClient(testkit.Client(t, e.brokers))
	testkit.Eventually(t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, e.source)
		if err != nil {
			return false
		}
		committed, err := adm.FetchOffsets(ctx, e.cfg.Kafka.Group)
		if err != nil {
			return false
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup(o.Topic, o.Partition); o.Offset > 0 && (!ok || c.At < o.Offset) {
				done = false
			}
		})
		return done
	}, "source offsets of %s committed to the end", e.source)
}

// hostileEvent is one record and what herald must make of it.
type hostileEvent struct {
	name    string
	rec     *kgo.Record
	outcome outcome.State
	error   string // part of the rejection's error
}

// TestHostileEvents sends records built to hurt — over the size limit,
// 10,000 headers, a 9 KiB header, an event type that is not UTF-8, binary
// values, JSON nested 20,000 deep — followed by a plain one. Each is
// rejected with a reason or delivered, the plain one arrives after them,
// and the source offsets move past all of them.
func TestHostileEvents(t *testing.T) {
	e := newEnv(t, 1)
	e.cfg.Delivery.MaxEventBytes = 64 << 10
	recv := testkit.NewReceiver(t)
	in := e.start()
	sub, v := e.subscribe(in, recv, "/all")

	manyHeaders := make([]kgo.RecordHeader, 10000)
	for i := range manyHeaders {
		manyHeaders[i] = kgo.RecordHeader{Key: fmt.Sprintf("h%d", i), Value: []byte("v")}
	}
	deep := func(n int) []byte {
		return []byte(`{"type":"bomb","data":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
	}
	rec := func(id string, value []byte, headers ...kgo.RecordHeader) *kgo.Record {
		return &kgo.Record{Value: value, Headers: append([]kgo.RecordHeader{{Key: "ce_id", Value: []byte(id)}}, headers...)}
	}
	events := []hostileEvent{
		{"over the size limit", rec("big", bytes.Repeat([]byte("x"), 100<<10)), outcome.Rejected, "value is 102400 bytes, over the limit of 65536"},
		{"10,000 headers", rec("headers", []byte(`{}`), manyHeaders...), outcome.Rejected, "10001 headers, over the limit of 256"},
		{"9 KiB header", rec("header-value", []byte(`{}`), kgo.RecordHeader{Key: "x-big", Value: bytes.Repeat([]byte("y"), 9<<10)}), outcome.Rejected, `header "x-big" is 9216 bytes`},
		{"type not UTF-8", rec("bad-type", []byte(`{}`), kgo.RecordHeader{Key: "ce_type", Value: []byte("order.\xff\xfe")}), outcome.Rejected, "not valid UTF-8"},
		{"header key not UTF-8", rec("bad-key", []byte(`{}`), kgo.RecordHeader{Key: "\xc3\x28", Value: []byte("v")}), outcome.Rejected, "header key is not valid UTF-8"},
		{"binary value", rec("binary", []byte("\xff\xfe\x00\x01 not json")), outcome.Delivered, ""},
		{"JSON nested 20,000 deep", rec("bomb-deep", deep(20000)), outcome.Delivered, ""},
		{"JSON nested 5,000 deep", rec("bomb", deep(5000)), outcome.Delivered, ""},
		{"plain", rec("plain", []byte(`{"type":"order.created"}`)), outcome.Delivered, ""},
	}
	cl := testkit.Client(t, e.brokers, kgo.DefaultProduceTopic(e.source), kgo.ProducerBatchMaxBytes(32<<20), kgo.MaxBufferedBytes(64<<20))

	// 10 MiB that does not compress: a real broker refuses it
	// (max.message.bytes is about 1 MB), which the producer must report; a
	// broker that takes it leaves it to herald to reject.
	var heapBefore runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapBefore)
	noise := make([]byte, 10<<20)
	_, _ = rand.Read(noise)
	raw := testkit.Client(t, e.brokers, kgo.DefaultProduceTopic(e.source), kgo.ProducerBatchMaxBytes(32<<20),
		kgo.MaxBufferedBytes(64<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := raw.ProduceSync(ctx, rec("ten-mib-raw", noise)).FirstErr()
	cancel()
	noise = nil
	switch {
	case err == nil:
		t.Log("the broker took an uncompressed 10 MiB record; herald must reject it")
		events = append(events, hostileEvent{"10 MiB uncompressed", rec("ten-mib-raw", nil), outcome.Rejected, "value is 10485760 bytes, over the limit of 65536"})
	case errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge):
		t.Logf("the broker refused the uncompressed 10 MiB record: %v", err)
	default:
		t.Fatalf("producing 10 MiB: %v, want MESSAGE_TOO_LARGE from the broker", err)
	}
	// 10 MiB that compresses to almost nothing gets past the broker's limit,
	// which applies to compressed batches: herald's own limit stops it.
	events = append(events, hostileEvent{"10 MiB compressed", rec("ten-mib", bytes.Repeat([]byte("z"), 10<<20)), outcome.Rejected, "value is 10485760 bytes, over the limit of 65536"})

	for _, ev := range events {
		if ev.rec.Value != nil {
			testkit.Produce(t, cl, ev.rec)
		}
	}
	byID := make(map[string]hostileEvent)
	for _, ev := range events {
		byID[event.DeliveryID(string(ev.rec.Headers[0].Value), sub.ID)] = ev
	}
	got := readOutcomes(t, e, func(r outcome.Record) bool {
		return r.SubscriptionID == sub.ID && (r.State == outcome.Rejected || r.State == outcome.Delivered)
	}, len(events), true)
	for id, ev := range byID {
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("%s: no outcome", ev.name)
		case r.State != ev.outcome:
			t.Errorf("%s: outcome %s (%s), want %s", ev.name, r.State, r.Error, ev.outcome)
		case !strings.Contains(r.Error, ev.error):
			t.Errorf("%s: error %q, want it to say %q", ev.name, r.Error, ev.error)
		}
	}
	delivered := 0
	for _, ev := range events {
		if ev.outcome == outcome.Delivered {
			delivered++
		}
	}
	for _, r := range recv.WaitFor(t, delivered, 30*time.Second) {
		if err := v.Verify(r.Header, r.Body); err != nil {
			t.Errorf("delivery %s does not verify: %v", r.Header.Get(webhook.HeaderID), err)
		}
		if !json.Valid(r.Body) {
			t.Errorf("delivery %s is not JSON: %.100q", r.Header.Get(webhook.HeaderID), r.Body)
		}
	}
	waitCommitted(t, e)

	var heapAfter runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapAfter)
	grew := int64(heapAfter.HeapAlloc) - int64(heapBefore.HeapAlloc)
	t.Logf("heap grew by %d KiB over the hostile events", grew>>10)
	if grew > 64<<20 {
		t.Errorf("heap grew by %d MiB", grew>>20)
	}
}

// TestHostileSubscribers puts three subscribers on one stream: one that
// answers 200 with a body that never ends, one that accepts connections and
// never reads them, and a healthy one. The endless body is cut at the cap
// and counts as delivered; the silent one times out until its circuit opens
// and its deliveries are parked in a retry tier; the healthy one gets
// everything on time meanwhile, and the source offsets move on.
func TestHostileSubscribers(t *testing.T) {
	e := newEnv(t, 2)
	in := e.start()

	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("endless "), 4<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() {
		endless.CloseClientConnections()
		endless.Close()
	})
	silent := testkit.SilentListener(t)
	healthy := testkit.NewReceiver(t)

	create := func(url string, change func(*subscription.Subscription)) *subscription.Subscription {
		s := &subscription.Subscription{URL: url, Topics: []string{e.source}}
		if change != nil {
			change(s)
		}
		created, _, err := in.app.Subscriptions().Create(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		return created
	}
	endlessSub := create(endless.URL+"/endless", nil)
	silentSub := create("http://"+silent+"/silent", func(s *subscription.Subscription) { s.TimeoutMS = 300 })
	create(healthy.URL()+"/healthy", nil)

	const n = 20
	start := time.Now()
	e.produce(0, n)
	healthy.WaitFor(t, n, 30*time.Second)
	t.Logf("the healthy subscriber got all %d events in %v", n, time.Since(start).Round(time.Millisecond))

	recs := collectOutcomes(t, e, endlessSub.ID, func(rs []outcome.Record) bool { return countStates(rs)[outcome.Delivered] == n })
	for _, r := range recs {
		if len(r.Response) > outcome.ResponseLimit || !strings.HasPrefix(r.Response, "endless") {
			t.Errorf("endless response kept as %d bytes %.20q", len(r.Response), r.Response)
			break
		}
	}

	// Every silent delivery times out or, once the circuit is open, is
	// parked: none is lost, none blocks the others.
	recs = collectOutcomes(t, e, silentSub.ID, func(rs []outcome.Record) bool {
		seen := make(map[string]bool)
		for _, r := range rs {
			if r.State == outcome.Failed || r.State == outcome.Parked || r.State == outcome.DeadLettered {
				seen[r.DeliveryID] = true
			}
		}
		return len(seen) == n
	})
	failed := 0
	for _, r := range recs {
		switch r.State {
		case outcome.Failed:
			failed++
			if !strings.HasPrefix(r.Error, "timeout: no response within 300ms") {
				t.Errorf("silent subscriber attempt error %q, want a timeout", r.Error)
			}
		case outcome.Delivered:
			t.Errorf("silent subscriber delivered %s", r.DeliveryID)
		}
	}
	if failed == 0 {
		t.Error("no silent attempt timed out")
	}
	t.Logf("silent subscriber outcomes: %v", countStates(recs))
	waitCommitted(t, e)
}

// TestRetryRecordDueFarAwayHoldsNothingUp puts a retry record whose
// herald-due-at is ten years away at the head of a tier partition, followed
// by one that is due now. The tier consumer pauses a partition until its
// head is due; a due time that no tier can have produced must not stop the
// records behind it. (Only a writer with access to herald's topics, or an
// instance whose clock is far off, makes such a record.)
func TestRetryRecordDueFarAwayHoldsNothingUp(t *testing.T) {
	e := newEnv(t, 1)
	recv := testkit.NewReceiver(t)
	in := e.start()
	sub, _ := e.subscribe(in, recv, "/hook")

	now := time.Now()
	record := func(eventID string, due time.Time, offset int) *kgo.Record {
		h := retry.Headers{
			DeliveryID: event.DeliveryID(eventID, sub.ID), EventID: eventID, EventType: "order.created",
			SubscriptionID: sub.ID, Attempt: 2, DueAt: due, FirstAttemptAt: now,
			Source: event.Position(e.source, 0, int64(offset)), LastStatus: 500, LastError: "HTTP 500",
		}
		return &kgo.Record{
			Topic: retry.TopicName(e.cfg.Topics.Prefix, e.cfg.Retry.Tiers[0]), Key: []byte(sub.ID),
			Value: []byte(`{"type":"order.created"}`), Headers: h.Encode(),
		}
	}
	cl := testkit.Client(t, e.brokers)
	testkit.Produce(t, cl, record("evt-far", now.AddDate(10, 0, 0), 0), record("evt-near", now, 1))

	reqs := recv.WaitFor(t, 1, 20*time.Second)
	if id := reqs[0].Header.Get(webhook.HeaderID); id != event.DeliveryID("evt-near", sub.ID) {
		t.Fatalf("delivered %s first, want the record that is due", id)
	}
	// Not delivered early, not dropped: dead-lettered as corrupt, and so
	// replayable.
	var entries []dlq.Entry
	testkit.Eventually(t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		entries, err = dlq.List(ctx, cl, retry.DLQTopic(e.cfg.Topics.Prefix), dlq.Filter{})
		return err == nil && len(entries) == 1
	}, "the far-off record is dead-lettered")
	if got := entries[0]; got.DeliveryID != event.DeliveryID("evt-far", sub.ID) || !strings.Contains(got.Reason, retry.HeaderDueAt) || got.Corrupt != "" {
		t.Errorf("dead letter %+v, want evt-far, replayable, with a reason naming %s", got, retry.HeaderDueAt)
	}
	if n := recv.Count(); n != 1 {
		t.Errorf("%d deliveries, want only the one that was due", n)
	}
}

// TestCompressedEventBombIsBounded produces one 256 MiB event of zeros
// compressed with zstd: the broker takes it (its limit applies to the
// compressed batch, a few KiB), and herald must reject it without holding
// it in memory. Known bug, skipped unless HERALD_KNOWN_BUGS is set: the
// consumer decompresses the whole batch (franz-go allows up to 1 GiB by
// default) before herald's max_event_bytes is checked, so the heap grows
// by the event's full size.
func TestCompressedEventBombIsBounded(t *testing.T) {
	if os.Getenv("HERALD_KNOWN_BUGS") == "" {
		t.Skip("known bug: a compressed batch is decompressed in full before delivery.max_event_bytes applies (set HERALD_KNOWN_BUGS=1 to run)")
	}
	const size = 256 << 20
	e := newEnv(t, 1)
	recv := testkit.NewReceiver(t)
	cl := testkit.Client(t, e.brokers, kgo.DefaultProduceTopic(e.source), kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.ProducerBatchMaxBytes(size+(1<<20)), kgo.BrokerMaxWriteBytes(2*size), kgo.MaxBufferedBytes(2*size))
	testkit.Produce(t, cl, &kgo.Record{Value: make([]byte, size), Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("bomb")}}})
	cl.Close()

	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	in := e.start()
	sub, _ := e.subscribe(in, recv, "/hook")
	got := collectOutcomes(t, e, sub.ID, func(rs []outcome.Record) bool { return len(rs) > 0 })
	close(stop)
	<-sampled
	if got[0].State != outcome.Rejected {
		t.Errorf("outcome %s (%s), want rejected", got[0].State, got[0].Error)
	}
	grew := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("heap peaked %d MiB above the baseline while herald read a %d MiB compressed event", grew>>20, size>>20)
	if grew > 64<<20 {
		t.Errorf("heap grew by %d MiB for one event; delivery.max_event_bytes is %d KiB", grew>>20, e.cfg.Delivery.MaxEventBytes>>10)
	}
}
