package dispatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
)

// slotFlight holds its job's request slot until released.
type slotFlight struct {
	j       *Job
	release chan struct{}
	reqs    *peak
}

func (f *slotFlight) Finish() Result {
	<-f.release
	f.reqs.leave()
	f.j.ReleaseSlot()
	return Result{Step: Delivered}
}

// TestDispatcherStarterBoundsRequests pins the Starter path: jobs finish on
// goroutines of their own while workers go on, yet an endpoint never has
// more than max_in_flight requests open — also when its queue ran empty and
// its workers left while requests were still open, and new jobs arrive.
func TestDispatcherStarterBoundsRequests(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_async", MaxInFlight: 3}
	release := make(chan struct{})
	var reqs peak
	var began sync.WaitGroup
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		if err := j.HoldSlot(ctx); err != nil {
			return nil, Result{Step: Abandoned, Err: err}
		}
		reqs.enter()
		began.Done()
		return &slotFlight{j: j, release: release, reqs: &reqs}, Result{}
	}))
	var done sync.WaitGroup
	submit := func(from, n int) {
		for i := from; i < from+n; i++ {
			done.Add(1)
			if err := d.Submit(context.Background(), job(sub, i, func(r Result) {
				if r.Step != Delivered {
					t.Errorf("step %v", r.Step)
				}
				done.Done()
			})); err != nil {
				t.Fatal(err)
			}
		}
	}
	began.Add(3)
	submit(0, 3)
	began.Wait()
	// The queue is empty and the workers are leaving; three requests are
	// open. New jobs must wait for those slots, not get fresh ones.
	time.Sleep(20 * time.Millisecond)
	began.Add(6)
	submit(3, 6)
	time.Sleep(20 * time.Millisecond)
	if n := reqs.now.Load(); n != 3 {
		t.Fatalf("%d requests open, want the limit 3", n)
	}
	close(release)
	began.Wait()
	done.Wait()
	if p := reqs.max.Load(); p != 3 {
		t.Fatalf("peak requests %d, want exactly the limit 3", p)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.endpoints) != 0 {
		t.Fatalf("%d endpoints left after every job finished", len(d.endpoints))
	}
}

// TestDispatcherCloseWaitsForFinishers: Close returns only once every job a
// Starter began has finished.
func TestDispatcherCloseWaitsForFinishers(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_close", MaxInFlight: 2}
	release := make(chan struct{})
	var reqs peak
	started := make(chan struct{}, 1)
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		if err := j.HoldSlot(ctx); err != nil {
			return nil, Result{Step: Abandoned, Err: err}
		}
		reqs.enter()
		started <- struct{}{}
		return &slotFlight{j: j, release: release, reqs: &reqs}, Result{}
	}))
	finished := make(chan Result, 1)
	if err := d.Submit(context.Background(), job(sub, 1, func(r Result) { finished <- r })); err != nil {
		t.Fatal(err)
	}
	<-started
	closed := make(chan error, 1)
	go func() { closed <- d.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a job was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-finished:
		if r.Step != Delivered {
			t.Fatalf("step %v", r.Step)
		}
	default:
		t.Fatal("Close returned before the job's Done")
	}
}

// TestDispatcherStarterEndsAtOnce: a job the Starter ends without a request
// finishes on the worker, and a revoked one is never begun.
func TestDispatcherStarterEndsAtOnce(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_now", MaxInFlight: 1}
	var begun sync.WaitGroup
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		begun.Done()
		return nil, Result{Step: Dropped}
	}))
	begun.Add(1)
	got := make(chan Result, 2)
	if err := d.Submit(context.Background(), job(sub, 1, func(r Result) { got <- r })); err != nil {
		t.Fatal(err)
	}
	begun.Wait()
	if r := <-got; r.Step != Dropped {
		t.Fatalf("step %v, want dropped", r.Step)
	}
	revoked := make(chan struct{})
	close(revoked)
	j := job(sub, 2, func(r Result) { got <- r })
	j.Abandon = revoked
	if err := d.Submit(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.Step != Abandoned {
		t.Fatalf("revoked job: step %v, want abandoned without being begun", r.Step)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDispatcherStartersAreBounded pins the workers of an endpoint run by
// a Starter: at most maxStarters begin attempts at once, however large its
// max_in_flight, and they still open every request it allows.
func TestDispatcherStartersAreBounded(t *testing.T) {
	const limit = 100
	sub := &subscription.Subscription{ID: "sub_starters", MaxInFlight: limit}
	release := make(chan struct{})
	var starters, reqs peak
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		starters.enter()
		defer starters.leave()
		time.Sleep(time.Millisecond) // a Redis round trip
		if err := j.HoldSlot(ctx); err != nil {
			return nil, Result{Step: Abandoned, Err: err}
		}
		reqs.enter()
		return &slotFlight{j: j, release: release, reqs: &reqs}, Result{}
	}))
	var done sync.WaitGroup
	for i := range 3 * limit {
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for reqs.now.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := reqs.now.Load(); n != limit {
		t.Fatalf("%d requests open, want max_in_flight %d", n, limit)
	}
	close(release)
	done.Wait()
	if p := starters.max.Load(); p > maxStarters {
		t.Fatalf("%d attempts began at once, want at most %d", p, maxStarters)
	}
	if p := reqs.max.Load(); p != limit {
		t.Fatalf("peak requests %d, want %d", p, limit)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
