package dispatch

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
)

// goroutineID is the id runtime.Stack prints for the calling goroutine.
func goroutineID() uint64 {
	var b [64]byte
	s := bytes.TrimPrefix(b[:runtime.Stack(b[:], false)], []byte("goroutine "))
	id, _ := strconv.ParseUint(string(s[:bytes.IndexByte(s, ' ')]), 10, 64)
	return id
}

// idFlight notes which goroutine finishes it.
type idFlight struct{ ids chan<- uint64 }

func (f idFlight) Finish() Result {
	f.ids <- goroutineID()
	return Result{Step: Delivered}
}

// oneAfterAnother submits jobs one after the other, each once the last has
// ended, job i to subscription sub(i), and counts the goroutine ids they
// send on ids.
func oneAfterAnother(t *testing.T, d *Dispatcher, sub func(i int) *subscription.Subscription, jobs int, ids <-chan uint64) map[uint64]int {
	t.Helper()
	seen := map[uint64]int{}
	for i := range jobs {
		sub := sub(i)
		var done sync.WaitGroup
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
		seen[<-ids]++
		done.Wait()
	}
	return seen
}

// noMoreGoroutinesThan waits until at most n goroutines are left: those
// Close let go may take a moment more to exit.
func noMoreGoroutinesThan(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > n {
		t.Fatalf("%d goroutines after Close, %d before the jobs", after, n)
	}
}

// TestFinishersAreReused pins the finishers: jobs that end one after the
// other are finished by the same goroutine, whose stack has grown once,
// rather than each by a fresh one. Close lets the finisher go.
func TestFinishersAreReused(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_finishers", MaxInFlight: 1}
	ids := make(chan uint64, 1)
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		return idFlight{ids: ids}, Result{}
	}))
	d.maxInline = 0 // every response to an awaiter, every job to a finisher
	before := runtime.NumGoroutine()
	const jobs = 20
	seen := oneAfterAnother(t, d, func(int) *subscription.Subscription { return sub }, jobs, ids)
	// A job may end before its finisher is back waiting for the next
	// one, which then gets a finisher of its own: two, not one per job.
	if len(seen) > 2 {
		t.Fatalf("%d jobs were finished by %d goroutines, want them reused: %v", jobs, len(seen), seen)
	}
	if n := d.finishers.n.Load(); n < 1 || n > 2 {
		t.Fatalf("%d finishers kept, want one or two", n)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.finishers.n.Load(); n != 0 {
		t.Fatalf("%d finishers left after Close", n)
	}
	// Close returns once the finishers are done; they may take a moment
	// more to exit.
	noMoreGoroutinesThan(t, before)
}

// heldFlight finishes once released, noting how many finish at once.
type heldFlight struct {
	release chan struct{}
	running *peak
}

func (f heldFlight) Finish() Result {
	f.running.enter()
	defer f.running.leave()
	<-f.release
	return Result{Step: Delivered}
}

// TestFinishersAtTheirLimit pins what happens when every finisher is busy:
// a job is queued for one of them (its awaiter does not finish it itself),
// its awaiter goes back to waiting for responses instead of waiting with
// it, and every job still finishes.
func TestFinishersAtTheirLimit(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_busy_finishers", MaxInFlight: 16}
	release := make(chan struct{})
	var running peak
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		return heldFlight{release: release, running: &running}, Result{}
	}))
	d.finishers.max = 2
	d.maxInline = 0
	const jobs = 10
	var done sync.WaitGroup
	for i := range jobs {
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.now.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for more, were they not to wait
	if n := running.now.Load(); n != 2 {
		t.Fatalf("%d jobs finishing, want the 2 finishers busy and the rest waiting for them", n)
	}
	// The 2 finishers are awaiters that stayed on; the other awaiters
	// left their jobs queued and are idle.
	busy := func() int32 { return d.awaiters.n.Load() - d.awaiters.idle.Load() }
	for busy() > 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := busy(); n != 2 {
		t.Fatalf("%d awaiters busy, want only the 2 serving as finishers", n)
	}
	close(release)
	done.Wait()
	if p := running.max.Load(); p != 2 {
		t.Fatalf("%d jobs finished at once, want at most the 2 finishers", p)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// awaitFlight notes which goroutine waits for its response.
type awaitFlight struct{ ids chan<- uint64 }

func (f awaitFlight) Await()         { f.ids <- goroutineID() }
func (f awaitFlight) Finish() Result { return Result{Step: Delivered} }

// TestAwaitersAreReused pins the awaiters: responses to requests sent one
// after the other are waited for by a few goroutines, each with the stack
// its first hand-off grew, rather than each by a fresh one. Close lets them
// go.
func TestAwaitersAreReused(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_awaiters", MaxInFlight: 1}
	ids := make(chan uint64, 1)
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		return awaitFlight{ids: ids}, Result{}
	}))
	d.maxInline = 0
	before := runtime.NumGoroutine()
	const jobs = 20
	seen := oneAfterAnother(t, d, func(int) *subscription.Subscription { return sub }, jobs, ids)
	// The first awaiter finds no finisher idle and stays on as one; a job
	// may also end before its awaiter is back waiting for the next one.
	if len(seen) > 3 {
		t.Fatalf("%d responses were awaited by %d goroutines, want them reused: %v", jobs, len(seen), seen)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.awaiters.n.Load(); n != 0 {
		t.Fatalf("%d awaiters left after Close", n)
	}
	noMoreGoroutinesThan(t, before)
}

// submitInFlight submits n jobs of sub and returns once all are in flight;
// the WaitGroup it returns is done when they have finished.
func submitInFlight(t *testing.T, d *Dispatcher, sub *subscription.Subscription, n int) *sync.WaitGroup {
	t.Helper()
	done := new(sync.WaitGroup)
	done.Add(n)
	for i := range n {
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	// A job counts as running before its awaiter is started.
	testkit.Eventually(t, 10*time.Second, func() bool {
		return d.running.Load() >= int64(n) && d.awaiters.n.Load()-d.awaiters.idle.Load() >= int32(n)
	}, "%d jobs running, each with its awaiter started", n)
	return done
}

// heldAwait waits for its response until released.
type heldAwait struct{ release <-chan struct{} }

func (f heldAwait) Await()         { <-f.release }
func (f heldAwait) Finish() Result { return Result{Step: Delivered} }

// TestAwaitersStayShallow pins what a request in flight costs in stack:
// thousands of awaiters waiting on a slow endpoint each keep the smallest
// stack a goroutine has, none of the hand-off's frames beneath the wait.
func TestAwaitersStayShallow(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes frames larger")
	}
	// New goroutines must start with the smallest stack, as in herald's
	// own binary (HERALD_LDFLAGS), for what an awaiter's stack holds to
	// show: the test runs again in a process of its own that does.
	const setting = "adaptivestackstart=0"
	if !strings.Contains(os.Getenv("GODEBUG"), setting) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAwaitersStayShallow$", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG="+setting)
		out, err := cmd.CombinedOutput()
		t.Logf("%s", out)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	const n = 4000
	sub := &subscription.Subscription{ID: "sub_shallow", MaxInFlight: n}
	release := make(chan struct{})
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		return heldAwait{release: release}, Result{}
	}))
	d.maxInline = 0 // the endpoint's last workers wait on awaiters too
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := submitInFlight(t, d, sub, n)
	runtime.GC()
	runtime.ReadMemStats(&during)
	close(release)
	done.Wait()
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The endpoint's workers and the runtime's own share are in the
	// difference too: a little over 2 KiB each.
	per := (int64(during.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("%d bytes of stack per request in flight", per)
	if per > 3<<10 {
		t.Fatalf("%d bytes of stack per awaiter, want the smallest stack (2 KiB) and little more", per)
	}
}

// TestAwaitersKeepFewIdle pins the bound on idle spares: after a burst of
// requests in flight, all but maxIdle of their awaiters exit.
func TestAwaitersKeepFewIdle(t *testing.T) {
	const burst, maxIdle = 40, 4
	sub := &subscription.Subscription{ID: "sub_burst", MaxInFlight: burst}
	release := make(chan struct{})
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		return heldAwait{release: release}, Result{}
	}))
	d.awaiters.maxIdle = maxIdle
	d.maxInline = 0
	// An awaiter that finds no finisher idle serves as one: one at most.
	d.finishers.max = 1
	done := submitInFlight(t, d, sub, burst)
	if n := d.awaiters.n.Load(); n != burst {
		t.Fatalf("%d awaiters for %d requests in flight", n, burst)
	}
	close(release)
	done.Wait()
	const kept = maxIdle + 1
	deadline := time.Now().Add(5 * time.Second)
	for d.awaiters.n.Load() > kept && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n, idle := d.awaiters.n.Load(), d.awaiters.idle.Load(); n > kept || idle > maxIdle {
		t.Errorf("%d awaiters left, %d of them idle, after the burst; want at most %d idle", n, idle, maxIdle)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.awaiters.n.Load(); n != 0 {
		t.Errorf("%d awaiters left after Close", n)
	}
}

// TestWorkersOfManyEndpointsAreKept pins the bound on idle workers: a
// fan-out to many endpoints keeps a worker for each, so the next event's
// jobs are begun on goroutines whose stacks have already grown.
func TestWorkersOfManyEndpointsAreKept(t *testing.T) {
	const endpoints = 600
	release := make(chan struct{})
	var begun sync.WaitGroup
	begun.Add(endpoints)
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		begun.Done()
		<-release
		return nil, Result{Step: Delivered}
	}))
	var done sync.WaitGroup
	done.Add(endpoints)
	for i := range endpoints {
		sub := &subscription.Subscription{ID: "sub_many_" + strconv.Itoa(i), MaxInFlight: 1}
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	begun.Wait() // one worker per endpoint, all busy at once
	close(release)
	done.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for d.spareWorkers.idle.Load() < endpoints && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if idle := d.spareWorkers.idle.Load(); idle < endpoints {
		t.Errorf("%d workers kept idle after a fan-out to %d endpoints, want one each", idle, endpoints)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.spareWorkers.n.Load(); n != 0 {
		t.Fatalf("%d workers left after Close", n)
	}
}

// TestWorkersAreReused pins the spare workers: endpoints that get a job
// one after the other begin it on a few goroutines, each with the stack
// its first job grew, rather than each on a fresh one.
func TestWorkersAreReused(t *testing.T) {
	ids := make(chan uint64, 1)
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		ids <- goroutineID()
		return idFlight{ids: make(chan uint64, 1)}, Result{}
	}))
	before := runtime.NumGoroutine()
	const jobs = 20
	seen := oneAfterAnother(t, d, func(i int) *subscription.Subscription {
		return &subscription.Subscription{ID: "sub_worker_" + strconv.Itoa(i), MaxInFlight: 1}
	}, jobs, ids)
	// A job may end before its worker is back waiting for the next one.
	if len(seen) > 2 {
		t.Fatalf("%d endpoints' jobs were begun by %d goroutines, want them reused: %v", jobs, len(seen), seen)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.spareWorkers.n.Load(); n != 0 {
		t.Fatalf("%d workers left after Close", n)
	}
	noMoreGoroutinesThan(t, before)
}

// goroutineFlight notes which goroutines wait for its response and finish
// it, and can hold the wait until released.
type goroutineFlight struct {
	awaited, finished chan<- uint64
	release           <-chan struct{}
}

func (f goroutineFlight) Await() {
	f.awaited <- goroutineID()
	if f.release != nil {
		<-f.release
	}
}

func (f goroutineFlight) Finish() Result {
	f.finished <- goroutineID()
	return Result{Step: Delivered}
}

// TestWorkerAwaitsItsLastJob pins what a fan-out to many endpoints costs
// in goroutines: a worker whose endpoint has no next job waits for the
// response and finishes the job itself, and neither an awaiter nor a
// finisher is woken for it.
func TestWorkerAwaitsItsLastJob(t *testing.T) {
	begun, awaited, finished := make(chan uint64, 1), make(chan uint64, 1), make(chan uint64, 1)
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		begun <- goroutineID()
		return goroutineFlight{awaited: awaited, finished: finished}, Result{}
	}))
	for i := range 20 {
		sub := &subscription.Subscription{ID: "sub_own_" + strconv.Itoa(i), MaxInFlight: 16}
		var done sync.WaitGroup
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
		b, a, f := <-begun, <-awaited, <-finished
		done.Wait()
		if a != b || f != b {
			t.Fatalf("job %d begun on goroutine %d, awaited on %d, finished on %d; want one goroutine", i, b, a, f)
		}
	}
	if n, m := d.awaiters.n.Load(), d.finishers.n.Load(); n != 0 || m != 0 {
		t.Errorf("%d awaiters and %d finishers started, want none", n, m)
	}
	if n := d.inline.Load(); n != 0 {
		t.Errorf("%d workers still counted as waiting for their own response", n)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestEndpointNotHeldByAWorkersOwnWait pins that a worker waiting for its
// last job's response has left its endpoint: with max_in_flight 1, and so
// a single worker, the endpoint's next job begins on another worker while
// the first response is awaited, and queued jobs are never left behind a
// worker that waits for one of its own.
func TestEndpointNotHeldByAWorkersOwnWait(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_own_wait", MaxInFlight: 1}
	begun := make(chan int, 8)
	awaited, finished := make(chan uint64, 8), make(chan uint64, 8)
	release := make(chan struct{})
	// Job 2 is taken alone, and begins once job 3 is queued behind it.
	taken, gate := make(chan struct{}), make(chan struct{})
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		n, _ := strconv.Atoi(j.Event.ID)
		if n == 2 {
			close(taken)
			<-gate
		}
		begun <- n
		return goroutineFlight{awaited: awaited, finished: finished, release: release}, Result{}
	}))
	var done sync.WaitGroup
	submit := func(n int) {
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, n, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	next := func(want int) {
		t.Helper()
		select {
		case n := <-begun:
			if n != want {
				t.Fatalf("job %d begun, want job %d", n, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("job %d not begun while the responses before it are awaited", want)
		}
		<-awaited
	}
	submit(0)
	next(0) // its worker waits for the response itself
	if n := d.inline.Load(); n != 1 {
		t.Fatalf("%d workers waiting for their own response, want 1", n)
	}
	submit(1)
	next(1)
	submit(2)
	<-taken
	submit(3)
	close(gate)
	next(2)
	next(3)
	close(release)
	done.Wait()
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestWorkersOwnWaitsAreBounded pins the bound on workers waiting for
// their own response: beyond maxInline, the waits go to awaiters, and
// every job still finishes.
func TestWorkersOwnWaitsAreBounded(t *testing.T) {
	const endpoints, most = 6, 2
	awaited, finished := make(chan uint64, endpoints), make(chan uint64, endpoints)
	release := make(chan struct{})
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		return goroutineFlight{awaited: awaited, finished: finished, release: release}, Result{}
	}))
	d.maxInline = most
	var done sync.WaitGroup
	for i := range endpoints {
		sub := &subscription.Subscription{ID: "sub_bound_" + strconv.Itoa(i), MaxInFlight: 16}
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	for range endpoints {
		<-awaited
	}
	if n := d.inline.Load(); n != most {
		t.Errorf("%d workers waiting for their own response, want %d", n, most)
	}
	if n := d.awaiters.n.Load() - d.awaiters.idle.Load(); n != endpoints-most {
		t.Errorf("%d awaiters waiting, want %d", n, endpoints-most)
	}
	close(release)
	done.Wait()
	if n := d.inline.Load(); n != 0 {
		t.Errorf("%d workers still counted as waiting for their own response", n)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
