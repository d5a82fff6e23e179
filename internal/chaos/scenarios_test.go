package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
)

// Each scenario runs herald processes against a stream of events, strikes
// once a third of the deliveries are acknowledged, and then waits until
// herald is idle and checks the receiver's tally (see report).

// receiverDelay keeps deliveries in flight when a fault strikes.
const receiverDelay = 2 * time.Millisecond

// killDupFloor is what a kill -9 can duplicate at worst: the deliveries the
// killed instance had in flight, acknowledged by the receiver but not yet
// marked done in Redis — subscription.DefaultMaxInFlight for the one
// subscription. The target, 0.1%, is 20 at its 20,000 events; at
// the small size the floor decides.
const killDupFloor = subscription.DefaultMaxInFlight

// TestKillNine kills one of two instances with SIGKILL in the middle of the
// stream. The survivor takes over its partitions once the group notices
// (the session timeout); what the dead one delivered but had not marked
// done in Redis, or not committed, is delivered again or suppressed.
func TestKillNine(t *testing.T) {
	needServices(t)
	t.Parallel()
	sz := size()
	d := newDeployment(t, testkit.Kafka(t), testkit.Redis(t), true)
	r := newReceiver(t, receiverDelay)
	a, b := d.start("a"), d.start("b")
	sub := d.subscribe(a, r)
	d.waitMembers(2)
	want := expected(sub, sz.events)

	start := time.Now()
	p := d.produce(sz.events, sz.produceOver)
	acked := waitAcked(t, r, want, len(want)/3)
	a.kill(t)
	killed := time.Now()
	t.Logf("killed herald a (kill -9) after %d acknowledgements, %v in", acked, time.Since(start).Round(time.Millisecond))
	p.wait(t)
	d.waitIdle(r, want, sz.settle)
	if !b.running() {
		t.Errorf("herald b exited: %v", b.err)
	}
	tl := r.tally(want)
	// A duplicate after kill -9 is a delivery the receiver acknowledged
	// just before the kill, whose done mark never reached Redis.
	note := fmt.Sprintf("SIGKILL after %d acks; the survivor took over after the group session timeout", acked)
	if len(tl.duplicated) > 0 {
		var before time.Duration
		for _, at := range tl.duplicated {
			before = max(before, killed.Sub(at))
		}
		note += fmt.Sprintf("; every duplicate was first acknowledged at most %v before the kill", before.Round(time.Millisecond))
	}
	report(t, result{
		scenario: "kill -9 one of two", tally: tl, deadLettered: d.deadLettered(), took: time.Since(start), note: note,
	}, dupLimit(len(want), 1, killDupFloor))
}

// TestSIGTERM stops one of two instances with SIGTERM in the middle of the
// stream and starts a replacement, as a rolling restart does: the drain
// finishes or hands off everything in flight and commits, so nothing is
// delivered twice.
func TestSIGTERM(t *testing.T) {
	needServices(t)
	t.Parallel()
	sz := size()
	d := newDeployment(t, testkit.Kafka(t), testkit.Redis(t), true)
	r := newReceiver(t, receiverDelay)
	a, _ := d.start("a"), d.start("b")
	sub := d.subscribe(a, r)
	d.waitMembers(2)
	want := expected(sub, sz.events)

	start := time.Now()
	p := d.produce(sz.events, sz.produceOver)
	acked := waitAcked(t, r, want, len(want)/3)
	drain := a.terminate(t, 60*time.Second)
	t.Logf("herald a drained and exited 0 in %v after SIGTERM at %d acknowledgements", drain.Round(time.Millisecond), acked)
	d.start("c")
	p.wait(t)
	d.waitIdle(r, want, sz.settle)
	report(t, result{
		scenario: "SIGTERM one of two", tally: r.tally(want), deadLettered: d.deadLettered(), took: time.Since(start),
		note: fmt.Sprintf("SIGTERM after %d acks, drained in %v, replacement started", acked, drain.Round(time.Millisecond)),
	}, 0)
}

// TestKafkaRestart stops the broker (a broker of the test's own) in the
// middle of the stream and starts it again: herald and the producer ride
// out the outage and carry on.
func TestKafkaRestart(t *testing.T) {
	needServices(t)
	t.Parallel()
	sz := size()
	k := startService(t, "kafka")
	d := newDeployment(t, []string{k.addr}, testkit.Redis(t), false)
	r := newReceiver(t, receiverDelay)
	a := d.start("a")
	sub := d.subscribe(a, r)
	want := expected(sub, sz.events)

	start := time.Now()
	p := d.produce(sz.events, sz.produceOver)
	acked := waitAcked(t, r, want, len(want)/3)
	stopAt := time.Now()
	if err := k.stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(stopAt)
	time.Sleep(sz.kafkaDown)
	restartAt := time.Now()
	if err := k.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker stopped after %d acknowledgements (stop took %v), down %v, back in %v",
		acked, stopped.Round(time.Millisecond), sz.kafkaDown, time.Since(restartAt).Round(time.Millisecond))
	p.wait(t)
	d.waitIdle(r, want, sz.settle)
	if !a.running() {
		t.Errorf("herald a exited during the broker outage: %v", a.err)
	}
	report(t, result{
		scenario: "Kafka broker restart", tally: r.tally(want), deadLettered: d.deadLettered(), took: time.Since(start),
		note: fmt.Sprintf("broker stopped after %d acks for %v", acked, sz.kafkaDown),
	}, dupLimit(len(want), 1, 0))
}

// TestRedisOutage stops Redis (one of the test's own) in the middle of the
// stream and starts it again, empty: herald delivers without duplicate
// suppression meanwhile, and says so in its log at most once a minute.
func TestRedisOutage(t *testing.T) {
	needServices(t)
	t.Parallel()
	sz := size()
	rs := startService(t, "redis")
	d := newDeployment(t, testkit.Kafka(t), rs.addr, true)
	r := newReceiver(t, receiverDelay)
	a, b := d.start("a"), d.start("b")
	sub := d.subscribe(a, r)
	d.waitMembers(2)
	want := expected(sub, sz.events)

	start := time.Now()
	p := d.produce(sz.events, sz.produceOver)
	acked := waitAcked(t, r, want, len(want)/3)
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(sz.redisDown)
	atRestart := r.count(want)
	if err := rs.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis stopped after %d acknowledgements for %v; %d acknowledged meanwhile",
		acked, time.Since(down).Round(time.Millisecond), atRestart-acked)
	p.wait(t)
	d.waitIdle(r, want, sz.settle)
	for _, in := range []*instance{a, b} {
		if !in.running() {
			t.Errorf("herald %s exited during the Redis outage: %v", in.name, in.err)
		}
		// One line per instance per minute of outage, at most (zap's
		// sampler counts from the first line, so one more may slip in).
		n := occurrences(in.log, "redis unavailable")
		limit := 2 + int(sz.redisDown/time.Minute)
		t.Logf("herald %s logged the Redis outage %d times", in.name, n)
		if n > limit {
			t.Errorf("herald %s logged the Redis outage %d times in %v, want at most %d", in.name, n, sz.redisDown, limit)
		}
	}
	if atRestart == acked {
		t.Errorf("nothing was delivered while Redis was down")
	}
	report(t, result{
		scenario: "Redis outage", tally: r.tally(want), deadLettered: d.deadLettered(), took: time.Since(start),
		note: fmt.Sprintf("Redis stopped after %d acks for %v; %d delivered during the outage", acked, sz.redisDown, atRestart-acked),
	}, dupLimit(len(want), 1, 0))
}

// TestSubscriberFailsAtRandom has the subscriber answer 500 to half the
// requests for a while: retries get every delivery through once it
// recovers, and none is acknowledged twice.
func TestSubscriberFailsAtRandom(t *testing.T) {
	subscriberFault(t, "subscriber 500s half the time", fail500)
}

// TestSubscriberDropsConnections has the subscriber hang up on requests,
// before answering or halfway through a 200, for a while. A cut-off 200
// is still an acknowledgement and must not be retried.
func TestSubscriberDropsConnections(t *testing.T) {
	subscriberFault(t, "subscriber drops connections", dropConnections)
}

func subscriberFault(t *testing.T, scenario string, f fault) {
	needServices(t)
	t.Parallel()
	sz := size()
	// Every failed attempt is a retry record and an outcome: a quarter of
	// the stream is plenty.
	events := max(sz.events/4, 200)
	d := newDeployment(t, testkit.Kafka(t), testkit.Redis(t), true)
	r := newReceiver(t, receiverDelay)
	a := d.start("a")
	sub := d.subscribe(a, r)
	want := expected(sub, events)

	start := time.Now()
	r.setFault(f)
	p := d.produce(events, sz.produceOver/2)
	time.Sleep(sz.faulty)
	r.setFault(behave)
	faulty := r.tally(want)
	t.Logf("subscriber misbehaved for %v: %d requests, %d refused, %d acknowledged", sz.faulty, faulty.requests, faulty.refused, faulty.acked)
	p.wait(t)
	d.waitIdle(r, want, sz.settle)
	if faulty.refused == 0 {
		t.Errorf("the fault refused no request")
	}
	tl := r.tally(want)
	report(t, result{
		scenario: scenario, tally: tl, deadLettered: d.deadLettered(), took: time.Since(start),
		note: fmt.Sprintf("%d events, fault for %v", events, sz.faulty),
	}, dupLimit(len(want), 1, 0))
}

// waitAcked waits until n of want are acknowledged and returns how many are.
func waitAcked(t *testing.T, r *receiver, want map[string]bool, n int) int {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := r.count(want)
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d deliveries acknowledged after 3 minutes", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMembers waits until n instances share the source partitions.
func (d *deployment) waitMembers(n int) {
	d.t.Helper()
	testkit.Eventually(d.t, 90*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		groups, err := d.adm.DescribeGroups(ctx, d.group)
		if err != nil {
			return false
		}
		g := groups[d.group]
		if g.State != "Stable" || len(g.Members) != n {
			return false
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 {
				return false
			}
		}
		return true
	}, "%d herald instances own source partitions", n)
}
