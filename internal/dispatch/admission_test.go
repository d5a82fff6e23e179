package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
)

// busyFlag is a busy probe a test sets.
type busyFlag struct{ atomic.Bool }

func (b *busyFlag) probe() bool { return b.Load() }

// admitN admits n jobs that must not wait, and returns their ticks.
func admitN(t *testing.T, a *admission, n int) []int64 {
	t.Helper()
	ticks := make([]int64, n)
	for i := range ticks {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tk, err := a.admit(ctx)
		cancel()
		if err != nil {
			t.Fatalf("job %d of %d waited: %v", i+1, n, err)
		}
		ticks[i] = tk
	}
	return ticks
}

// admitLater admits one job on a goroutine; the channel gets its error.
func admitLater(a *admission, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := a.admit(ctx)
		done <- err
	}()
	return done
}

func waiters(a *admission) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}

// TestAdmissionLimit pins how the limit moves: it starts at the floor,
// grows to the maximum within a second and a half of ticks while the CPU
// is not short, and falls back to the floor, never below it, while it is.
func TestAdmissionLimit(t *testing.T) {
	var busy busyFlag
	a := newAdmission(10000, 256, busy.probe)
	expect := func(want int64, when string) {
		t.Helper()
		if got := a.current(); got != want {
			t.Fatalf("%s: limit %d, want %d", when, got, want)
		}
	}
	expect(256, "at the start (the floor)")
	for range 15 {
		a.advance()
	}
	expect(10000, "after 15 ticks with CPU to spare")
	a.advance()
	expect(10000, "one tick more (never past the maximum)")

	// Busy with 2,000 jobs running: the limit falls below them at once,
	// to three quarters of them.
	admitN(t, a, 2000)
	busy.Store(true)
	a.advance()
	expect(1500, "busy with 2000 running")
	for range 20 {
		a.advance()
	}
	expect(256, "busy for 2s (the floor)")

	// A floor above the maximum is the maximum.
	if got := newAdmission(100, 256, busy.probe).current(); got != 100 {
		t.Fatalf("floor above the maximum: limit %d, want 100", got)
	}
}

// TestAdmissionWaitsForRoom pins that admit waits once the recent jobs
// reach the limit, wakes when enough of them finish, and gives up with
// ctx's error without counting itself.
func TestAdmissionWaitsForRoom(t *testing.T) {
	var busy busyFlag
	busy.Store(true)
	a := newAdmission(1000, 16, busy.probe)
	ticks := admitN(t, a, 16)

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := admitLater(a, ctx)
	testkit.Eventually(t, 5*time.Second, func() bool { return waiters(a) == 1 }, "the 17th job never waited")
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait returned %v", err)
	}
	if a.count != 16 || waiters(a) != 0 {
		t.Fatalf("after a cancelled wait: %d counted, %d waiting; want 16 and 0", a.count, waiters(a))
	}

	next := admitLater(a, context.Background())
	testkit.Eventually(t, 5*time.Second, func() bool { return waiters(a) == 1 }, "the 17th job never waited")
	// One finished job is room enough for a limit of 16 (an eighth of it,
	// rounded down, is 2: the waiter wakes only at the second).
	a.done(ticks[0])
	select {
	case err := <-next:
		t.Fatalf("woke with room for one job of 16 (err %v); want a batch of two", err)
	default:
	}
	a.done(ticks[1])
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	if a.count != 15 {
		t.Fatalf("%d counted, want 15", a.count)
	}
}

// TestAdmissionForgetsOldJobs pins that a job counts only for admitWindow:
// a slow endpoint's requests stop holding the others back, and finishing
// one afterwards does not count anything off twice.
func TestAdmissionForgetsOldJobs(t *testing.T) {
	var busy busyFlag
	busy.Store(true)
	a := newAdmission(1000, 16, busy.probe)
	old := admitN(t, a, 16)
	next := admitLater(a, context.Background())
	testkit.Eventually(t, 5*time.Second, func() bool { return waiters(a) == 1 }, "the 17th job never waited")

	window := int(admitWindow / admitTick)
	for range window - 1 {
		a.advance()
	}
	select {
	case <-next:
		t.Fatal("woke before the 16 jobs were a window old")
	default:
	}
	a.advance()
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	for _, tk := range old {
		a.done(tk) // finished after the window: not counted any more
	}
	if a.count != 1 {
		t.Fatalf("%d counted, want only the job admitted last", a.count)
	}
	admitN(t, a, 15)
}

// TestAdmissionConcurrently runs admit and done from many goroutines
// against a ticking limit (-race): every job is let in and the count ends
// at zero.
func TestAdmissionConcurrently(t *testing.T) {
	var busy busyFlag
	a := newAdmission(64, 8, busy.probe)
	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				busy.Store(!busy.Load())
				a.advance()
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 500 {
				tk, err := a.admit(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				a.done(tk)
			}
		})
	}
	wg.Wait()
	close(stop)
	ticker.Wait()
	if a.count != 0 {
		t.Fatalf("count %d after every job finished, want 0", a.count)
	}
	var sum int64
	for _, n := range a.recent {
		sum += n
	}
	if sum != 0 {
		t.Fatalf("ticks hold %d jobs after every job finished, want 0", sum)
	}
}

// TestSlowTenth pins the percentile read from the runtime's histogram:
// only the waits since the previous reading count, and too few say
// nothing.
func TestSlowTenth(t *testing.T) {
	h := &metrics.Float64Histogram{
		Buckets: []float64{math.Inf(-1), 0, 0.001, 0.002, 0.004, math.Inf(1)},
		Counts:  []uint64{0, 500, 400, 60, 40},
	}
	prev := make([]uint64, 5)
	if got := slowTenth(h, prev); got != 0.001 {
		t.Fatalf("90th percentile of 1,000 waits: %v, want the bucket from 1ms", got)
	}
	// Since prev, only the slow waits came: their 90th percentile is in
	// the bucket from 4ms.
	prev = []uint64{0, 500, 400, 0, 0}
	if got := slowTenth(h, prev); got != 0.004 {
		t.Fatalf("90th percentile of the 100 waits since prev: %v, want 0.004", got)
	}
	if got := slowTenth(h, []uint64{0, 500, 400, 60, 0}); got != 0 {
		t.Fatalf("40 waits: %v, want 0 (too few to say)", got)
	}
	h.Counts[0] = 100 // waits below the first bound count as none
	if got := slowTenth(h, []uint64{0, 500, 400, 60, 40}); got != 0 {
		t.Fatalf("100 waits in the first bucket: %v, want 0", got)
	}
}

// TestSchedLatencyReadsTheRuntime pins that the probe reads the runtime's
// histogram: the first call has nothing to compare with, and idle
// goroutines do not make the process busy.
func TestSchedLatencyReadsTheRuntime(t *testing.T) {
	busy := schedLatency(time.Hour)
	if busy() {
		t.Fatal("the first reading has nothing to compare with: not busy")
	}
	var wg sync.WaitGroup
	for range 1000 {
		wg.Go(func() { time.Sleep(time.Millisecond) })
	}
	wg.Wait()
	if busy() {
		t.Fatal("no goroutine waited an hour for a CPU, yet busy")
	}
	always := schedLatency(-time.Second)
	always()
	for range 1000 {
		wg.Go(func() { time.Sleep(time.Millisecond) })
	}
	wg.Wait()
	if !always() {
		t.Fatal("with a negative threshold, 1,000 goroutines waking must make the process busy")
	}
}

// TestSubmitWaitsForAdmission pins the dispatcher's use of admission:
// while the CPU is short, Submit takes no more than the floor of recent
// jobs until some finish, however many endpoints they are spread over.
func TestSubmitWaitsForAdmission(t *testing.T) {
	var busy busyFlag
	busy.Store(true)
	release := make(chan struct{})
	d := New(func(ctx context.Context, j *Job) Result { <-release; return Result{Step: Delivered} },
		WithAdmission(busy.probe), WithRetrier(&parkRecorder{}))
	defer func() { _ = d.Close(context.Background()) }()
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	defer releaseAll() // before Close, should the test fail first

	var finished atomic.Int64
	subs := make([]*subscription.Subscription, 64)
	for i := range subs {
		subs[i] = &subscription.Subscription{ID: fmt.Sprintf("sub_%d", i), MaxInFlight: 16}
	}
	for i := range busyFloor {
		if err := d.Submit(context.Background(), job(subs[i%len(subs)], i, func(Result) { finished.Add(1) })); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Stats().AdmitLimit; got != busyFloor {
		t.Fatalf("admit limit %d, want the floor %d", got, busyFloor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Submit(ctx, job(subs[0], busyFloor, nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("job %d while the CPU is short: %v, want it to wait", busyFloor+1, err)
	}
	// Finished jobs make room at once, long before they would have aged
	// out of the window.
	a := d.admit
	a.mu.Lock()
	start := a.tick
	a.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		done <- d.Submit(context.Background(), job(subs[1], busyFloor+1, func(Result) { finished.Add(1) }))
	}()
	releaseAll()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return finished.Load() == busyFloor+1 }, "the jobs never finished")
	a.mu.Lock()
	count, ticks := a.count, a.tick-start
	a.mu.Unlock()
	if window := int64(admitWindow / admitTick); ticks >= window || count != 0 {
		t.Fatalf("%d jobs still counted %d ticks after every one finished; want none, well within the window of %d", count, ticks, window)
	}
}
