package dispatch

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
)

type parkRecorder struct {
	mu     sync.Mutex
	parked []string
}

func (p *parkRecorder) Retry(_ context.Context, j *Job, r Retry) error {
	if !r.Park {
		return fmt.Errorf("unexpected retry")
	}
	p.mu.Lock()
	p.parked = append(p.parked, j.Subscription.ID)
	p.mu.Unlock()
	return nil
}

func (p *parkRecorder) DeadLetter(context.Context, *Job, DeadLetter) error { return nil }

func (p *parkRecorder) count(subID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, id := range p.parked {
		if id == subID {
			n++
		}
	}
	return n
}

func job(sub *subscription.Subscription, n int, done func(Result)) *Job {
	return &Job{
		Event:        &event.Event{ID: fmt.Sprint(n)},
		Subscription: sub,
		DeliveryID:   event.DeliveryID(fmt.Sprint(n), sub.ID),
		Attempt:      1,
		Done:         done,
	}
}

// peak tracks the highest value a counter reaches.
type peak struct{ now, max atomic.Int32 }

func (p *peak) enter() {
	n := p.now.Add(1)
	for {
		m := p.max.Load()
		if n <= m || p.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (p *peak) leave() { p.now.Add(-1) }

// TestDispatcherPerEndpointLimit pins that an endpoint never has more than
// max_in_flight requests (slots held) at once, while more attempts than
// that run, so that their work around the request overlaps; and that an
// endpoint limited to one request runs one attempt at a time.
func TestDispatcherPerEndpointLimit(t *testing.T) {
	for _, limit := range []int{3, 1} {
		sub := &subscription.Subscription{ID: fmt.Sprintf("sub_%d", limit), MaxInFlight: limit}
		var attempts, requests peak
		d := New(func(ctx context.Context, j *Job) Result {
			attempts.enter()
			defer attempts.leave()
			time.Sleep(time.Millisecond) // the lease before the request
			if err := j.HoldSlot(ctx); err != nil {
				return Result{Step: Abandoned, Err: err}
			}
			requests.enter()
			time.Sleep(2 * time.Millisecond)
			requests.leave()
			j.ReleaseSlot()
			j.ReleaseSlot()              // idempotent
			time.Sleep(time.Millisecond) // the done mark and outcome after it
			return Result{Step: Delivered}
		})
		var wg sync.WaitGroup
		for i := 0; i < 60; i++ {
			wg.Add(1)
			if err := d.Submit(context.Background(), job(sub, i, func(Result) { wg.Done() })); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if p := requests.max.Load(); p != int32(limit) {
			t.Fatalf("max_in_flight %d: peak requests %d, want exactly the limit", limit, p)
		}
		p := attempts.max.Load()
		if limit == 1 && p != 1 {
			t.Fatalf("max_in_flight 1: %d attempts ran at once, want 1", p)
		}
		if limit > 1 && (p <= int32(limit) || p > int32(2*limit)) {
			t.Fatalf("max_in_flight %d: peak attempts %d, want more than the limit and at most twice it", limit, p)
		}
		if err := d.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDispatcherSlowEndpointDoesNotBlockOthers pins head-of-line freedom: a
// hung endpoint's queue fills and further jobs for it are parked, while a
// healthy endpoint's jobs all complete before the hung ones are released.
func TestDispatcherSlowEndpointDoesNotBlockOthers(t *testing.T) {
	slow := &subscription.Subscription{ID: "sub_slow", MaxInFlight: 2}
	fast := &subscription.Subscription{ID: "sub_fast", MaxInFlight: 4}
	release := make(chan struct{})
	parker := &parkRecorder{}
	d := New(func(ctx context.Context, j *Job) Result {
		if j.Subscription.ID == slow.ID {
			<-release
		}
		return Result{Step: Delivered}
	}, WithRetrier(parker), WithEndpointQueue(5), WithMaxPending(1000), WithStallAfter(200*time.Millisecond))

	var fastDone, slowDone sync.WaitGroup
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	for i := 0; i < 100; i++ {
		slowDone.Add(1)
		if err := d.Submit(context.Background(), job(slow, i, func(r Result) { note("slow:" + r.Step.String()); slowDone.Done() })); err != nil {
			t.Fatal(err)
		}
		fastDone.Add(1)
		if err := d.Submit(context.Background(), job(fast, i, func(Result) { note("fast"); fastDone.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	fastDone.Wait()
	mu.Lock()
	for _, s := range order {
		if s == "slow:delivered" {
			t.Fatal("a hung delivery completed before the healthy endpoint finished")
		}
	}
	mu.Unlock()
	// At most 2 running + 5 queued are held (plus up to 2 a worker has
	// not yet taken off the queue); everything else was parked. (The fast
	// endpoint may park some too when submissions outpace it; that is the
	// same rule working.)
	// Parking runs off the submitting goroutine: wait for it to settle.
	deadline := time.Now().Add(10 * time.Second)
	held := 100 - parker.count(slow.ID)
	for held > 2+5+2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		held = 100 - parker.count(slow.ID)
	}
	if held < 5 || held > 2+5+2 {
		t.Fatalf("%d slow jobs held in memory, want between 5 and 9; the rest parked", held)
	}
	close(release)
	slowDone.Wait()
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDispatcherBusyEndpointIsNotParked pins that a full queue alone does not
// park: an endpoint that keeps finishing attempts quickly holds up its
// submitter (backpressure on the source) instead of sending its backlog
// round a retry tier.
func TestDispatcherBusyEndpointIsNotParked(t *testing.T) {
	busy := &subscription.Subscription{ID: "sub_busy", MaxInFlight: 1}
	parker := &parkRecorder{}
	d := New(func(ctx context.Context, j *Job) Result {
		time.Sleep(time.Millisecond)
		return Result{Step: Delivered}
	}, WithRetrier(parker), WithEndpointQueue(2), WithMaxPending(1000), WithStallAfter(time.Minute))
	var wg sync.WaitGroup
	var delivered atomic.Int32
	for i := 0; i < 200; i++ {
		wg.Add(1)
		if err := d.Submit(context.Background(), job(busy, i, func(r Result) {
			if r.Step == Delivered {
				delivered.Add(1)
			}
			wg.Done()
		})); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if n := parker.count(busy.ID); n != 0 {
		t.Fatalf("%d jobs of a busy but healthy endpoint parked, want 0", n)
	}
	if n := delivered.Load(); n != 200 {
		t.Fatalf("%d delivered, want 200", n)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitRefillsHalfTheQueue pins that a submitter held up by a busy
// endpoint's full queue wakes once the queue is down to half and refills
// it, not once for every job its worker takes off it.
func TestSubmitRefillsHalfTheQueue(t *testing.T) {
	busy := &subscription.Subscription{ID: "sub_busy", MaxInFlight: 1}
	const n, queue = 400, 16
	d := New(func(ctx context.Context, j *Job) Result {
		time.Sleep(100 * time.Microsecond)
		return Result{Step: Delivered}
	}, WithRetrier(&parkRecorder{}), WithEndpointQueue(queue), WithMaxPending(1000), WithStallAfter(time.Minute))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		if err := d.Submit(context.Background(), job(busy, i, func(Result) { wg.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	// The worker takes a job every 100µs or more while a submit takes a
	// few: the queue is full whenever the submitter comes back to it.
	// Waking at half, it waits about once per queue/2 jobs; waking at
	// every job taken, n-queue times.
	if w := d.waits.Load(); w == 0 || w > 2*n/(queue/2) {
		t.Fatalf("Submit waited %d times for %d jobs with a queue of %d, want at most %d", w, n, queue, 2*n/(queue/2))
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDispatcherAbandonsUnstartedJobs pins the revoke contract: jobs not yet
// started when their partition is revoked finish as Abandoned, unattempted.
func TestDispatcherAbandonsUnstartedJobs(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_a", MaxInFlight: 1}
	block := make(chan struct{})
	var attempted atomic.Int32
	d := New(func(ctx context.Context, j *Job) Result {
		attempted.Add(1)
		<-block
		return Result{Step: Delivered}
	})
	abandon := make(chan struct{})
	results := make(chan Step, 10)
	for i := 0; i < 10; i++ {
		j := job(sub, i, func(r Result) { results <- r.Step })
		j.Abandon = abandon
		if err := d.Submit(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	for attempted.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(abandon)
	close(block)
	counts := map[Step]int{}
	for i := 0; i < 10; i++ {
		counts[<-results]++
	}
	if counts[Delivered] != 1 || counts[Abandoned] != 9 || attempted.Load() != 1 {
		t.Fatalf("got %v with %d attempted; want the running one delivered and 9 abandoned", counts, attempted.Load())
	}
	_ = d.Close(context.Background())
}

// TestDispatcherBackpressure pins the global bound: Submit blocks once
// maxPending jobs are queued or running, and returns ctx's error.
func TestDispatcherBackpressure(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_a", MaxInFlight: 1}
	block := make(chan struct{})
	d := New(func(ctx context.Context, j *Job) Result { <-block; return Result{Step: Delivered} }, WithMaxPending(3))
	for i := 0; i < 3; i++ {
		if err := d.Submit(context.Background(), job(sub, i, nil)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Submit(ctx, job(sub, 4, nil)); err == nil {
		t.Fatal("a fourth job must wait for a free slot")
	}
	close(block)
	_ = d.Close(context.Background())
}
