package dispatch

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/dedupe"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// preparer records what the dispatcher prepares and undoes. Each Prepare
// takes a while, so that a worker taking the job meanwhile must wait.
type preparer struct {
	mu         sync.Mutex
	started    map[*Job]bool
	prepared   map[string]int
	unprepared map[string]int
	ready      map[*Job]bool
}

func newPreparer() *preparer {
	return &preparer{started: map[*Job]bool{}, prepared: map[string]int{}, unprepared: map[string]int{}, ready: map[*Job]bool{}}
}

func (p *preparer) Prepare(_ context.Context, j *Job) {
	p.mu.Lock()
	p.started[j] = true
	p.mu.Unlock()
	time.Sleep(time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prepared[j.Event.ID]++
	p.ready[j] = true
}

func (p *preparer) Unprepare(_ context.Context, j *Job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unprepared[j.Event.ID]++
}

// halfway says that j's preparation began and has not ended.
func (p *preparer) halfway(j *Job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started[j] && !p.ready[j]
}

func (p *preparer) isReady(j *Job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready[j]
}

func (p *preparer) ids(m map[string]int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id, n := range m {
		if n != 1 {
			ids = append(ids, id+" more than once")
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TestPreparerRunsAheadOfTheQueue pins WithPreparer: each time a worker
// takes a job, the jobs next in line (four per worker) are prepared, each
// once; an attempt of a job being prepared waits until it is; a job
// taken as soon as it is queued is not prepared.
func TestPreparerRunsAheadOfTheQueue(t *testing.T) {
	for _, mode := range []string{"handler", "starter"} {
		t.Run(mode, func(t *testing.T) {
			sub := &subscription.Subscription{ID: "sub_prep", MaxInFlight: 1} // one worker
			p := newPreparer()
			running := make(chan struct{}, 1)
			release := make(chan struct{})
			var mu sync.Mutex
			var order, unready []string
			attempt := func(j *Job) {
				mu.Lock()
				order = append(order, j.Event.ID)
				if j.Event.ID != "0" && j.Event.ID != "1" && !p.isReady(j) {
					unready = append(unready, j.Event.ID)
				}
				mu.Unlock()
				if j.Event.ID == "0" {
					running <- struct{}{}
					<-release
				}
			}
			var d *Dispatcher
			if mode == "handler" {
				d = New(func(_ context.Context, j *Job) Result { attempt(j); return Result{Step: Delivered} }, WithPreparer(p))
			} else {
				d = New(nil, WithPreparer(p), WithStarter(func(_ context.Context, j *Job) (Finisher, Result) {
					attempt(j)
					return nil, Result{Step: Delivered}
				}))
			}
			var done sync.WaitGroup
			submit := func(i int) {
				done.Add(1)
				if err := d.Submit(context.Background(), job(sub, i, func(r Result) {
					if r.Step != Delivered {
						t.Errorf("job %d: %v", i, r.Step)
					}
					done.Done()
				})); err != nil {
					t.Fatal(err)
				}
			}
			submit(0)
			<-running // job 0 was taken alone: nothing was in line
			for i := 1; i < 10; i++ {
				submit(i)
			}
			close(release)
			done.Wait()
			if err := d.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(order, want) {
				t.Fatalf("attempted %v, want %v", order, want)
			}
			// Taking job 1 prepared jobs 2–5; each later take, one more.
			if got, want := p.ids(p.prepared), []string{"2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
				t.Fatalf("prepared %v, want %v", got, want)
			}
			if len(unready) > 0 {
				t.Fatalf("jobs %v were attempted before their preparation ended", unready)
			}
			if got := p.ids(p.unprepared); len(got) > 0 {
				t.Fatalf("attempted jobs %v were unprepared", got)
			}
		})
	}
}

// TestPreparedJobsAbandonedAreUnprepared: a prepared job that ends without
// an attempt (its partition revoked) is handed back to the Preparer; one
// never prepared is not.
func TestPreparedJobsAbandonedAreUnprepared(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_prep_revoked", MaxInFlight: 1}
	p := newPreparer()
	running := make(chan struct{}, 1)
	release := make(chan struct{})
	d := New(func(_ context.Context, j *Job) Result {
		if j.Event.ID == "0" || j.Event.ID == "1" {
			running <- struct{}{}
			<-release
		}
		return Result{Step: Delivered}
	}, WithPreparer(p))
	abandon := make(chan struct{})
	results := make(chan Step, 8)
	submit := func(i int) {
		j := job(sub, i, func(r Result) { results <- r.Step })
		if i >= 2 {
			j.Abandon = abandon
		}
		if err := d.Submit(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	submit(0)
	<-running
	for i := 1; i < 8; i++ {
		submit(i)
	}
	release <- struct{}{} // job 0 ends; taking job 1 prepares jobs 2–5
	<-running
	close(abandon)
	close(release)
	counts := map[Step]int{}
	for range 8 {
		counts[<-results]++
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if counts[Delivered] != 2 || counts[Abandoned] != 6 {
		t.Fatalf("got %v, want 2 delivered and 6 abandoned", counts)
	}
	if got, want := p.ids(p.unprepared), p.ids(p.prepared); !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("unprepared %v, want every prepared job %v", got, want)
	}
}

// TestWorkersWaitForPreparationByOthers: with several workers, one often
// takes a job another is still preparing; its attempt must wait until the
// preparation ends.
func TestWorkersWaitForPreparationByOthers(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_prep_many", MaxInFlight: 4}
	p := newPreparer()
	var mu sync.Mutex
	var halfway []string
	d := New(nil, WithPreparer(p), WithStarter(func(_ context.Context, j *Job) (Finisher, Result) {
		if p.halfway(j) {
			mu.Lock()
			halfway = append(halfway, j.Event.ID)
			mu.Unlock()
		}
		time.Sleep(100 * time.Microsecond)
		return nil, Result{Step: Delivered}
	}))
	var done sync.WaitGroup
	for i := range 300 {
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
	}
	done.Wait()
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(halfway) > 0 {
		t.Fatalf("jobs %v were attempted while another worker was preparing them", halfway)
	}
	if n := len(p.ids(p.prepared)); n < 100 {
		t.Fatalf("only %d of 300 jobs prepared", n)
	}
	for _, id := range p.ids(p.prepared) {
		if strings.HasSuffix(id, "more than once") {
			t.Fatalf("job %s prepared", id)
		}
	}
}

// askingFixture is a fixture whose Deduper can send leases ahead: a
// dedupe.Store on a deferred autopipeliner, as herald runs it, on clock.
func askingFixture(t *testing.T, handler http.HandlerFunc, clock func() time.Time) *fixture {
	t.Helper()
	f := newFixture(t, handler)
	ap, err := f.rdb.AsyncAutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ap.Close() })
	f.a.Dedupe = dedupe.New(ap, dedupe.WithClock(clock))
	f.a.Now = clock
	return f
}

// TestAttemptTakesThePreparedLease: the attempt of a prepared job takes
// the answer to the lease Prepare sent, rather than asking again (a lease
// of its own already in Redis would answer busy and park it), and the
// lease it delivers under is the one Prepare sent.
func TestAttemptTakesThePreparedLease(t *testing.T) {
	ctx := context.Background()
	var f *fixture
	var during string
	f = askingFixture(t, func(w http.ResponseWriter, _ *http.Request) {
		during = f.rdb.Get(context.Background(), "herald:d:"+event.DeliveryID("evt-1", "sub_a")).Val()
		w.WriteHeader(http.StatusNoContent)
	}, time.Now)
	j := f.job(1)
	f.a.Prepare(ctx, j)
	if j.lease == nil {
		t.Fatal("Prepare sent no lease on a deferred autopipeliner")
	}
	if _, err := j.lease.Wait(ctx); err != nil { // the answer is in before the attempt
		t.Fatal(err)
	}
	asked := f.rdb.Get(ctx, "herald:d:"+j.DeliveryID).Val()
	if !strings.HasPrefix(asked, "lease:") {
		t.Fatalf("after Prepare the key holds %q, want a lease", asked)
	}
	if res := f.a.Handle(ctx, j); res.Step != Delivered {
		t.Fatalf("step %v (%v), want delivered", res.Step, res.Err)
	}
	if during != asked {
		t.Fatalf("the request went out under lease %q, want the prepared %q", during, asked)
	}
	if got := f.outs.states(); !slices.Equal(got, []outcome.State{outcome.Delivered}) {
		t.Fatalf("outcomes %v", got)
	}
}

// TestAttemptRetakesALeasePreparedLongAgo: a lease sent more than
// leaseAhead before its attempt begins may not last the attempt; it is
// given back and taken again.
func TestAttemptRetakesALeasePreparedLongAgo(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var f *fixture
	var during string
	f = askingFixture(t, func(w http.ResponseWriter, _ *http.Request) {
		during = f.rdb.Get(context.Background(), "herald:d:"+event.DeliveryID("evt-1", "sub_a")).Val()
		w.WriteHeader(http.StatusNoContent)
	}, clock)
	j := f.job(1)
	f.a.Prepare(ctx, j)
	l := j.lease
	if _, err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	asked := f.rdb.Get(ctx, "herald:d:"+j.DeliveryID).Val()
	mu.Lock()
	now = now.Add(leaseAhead + time.Millisecond)
	mu.Unlock()
	if res := f.a.Handle(ctx, j); res.Step != Delivered {
		t.Fatalf("step %v (%v), want delivered", res.Step, res.Err)
	}
	if !strings.HasPrefix(during, "lease:") || during == asked {
		t.Fatalf("the request went out under %q, want a lease taken again in place of %q", during, asked)
	}
}

// TestPreparedLeaseGivenBackWhenTheAttemptEndsEarly: an attempt that ends
// before its lease would be taken (subscription paused, deleted, circuit
// open) gives back the lease Prepare sent, so that its next attempt, here
// or on another instance, is not turned away as busy.
func TestPreparedLeaseGivenBackWhenTheAttemptEndsEarly(t *testing.T) {
	cases := map[string]func(f *fixture){
		"paused": func(f *fixture) {
			_, _ = f.subs.Update(context.Background(), "sub_a", 0, func(s *subscription.Subscription) error {
				s.Status = subscription.StatusPaused
				return nil
			})
		},
		"deleted": func(f *fixture) {
			f.subs.mu.Lock()
			delete(f.subs.m, "sub_a")
			f.subs.mu.Unlock()
		},
		"circuit open": func(f *fixture) {
			f.a.Breaker.Failure("sub_a")
			f.a.Breaker.Failure("sub_a")
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := askingFixture(t, status(http.StatusNoContent), time.Now)
			j := f.job(1)
			f.a.Prepare(ctx, j)
			change(f)
			res := f.a.Handle(ctx, j)
			if res.Step == Delivered {
				t.Fatal("delivered")
			}
			if n := f.rdb.Exists(ctx, "herald:d:"+j.DeliveryID).Val(); n != 0 {
				t.Fatalf("the prepared lease is still held after the attempt ended (%v)", res.Step)
			}
		})
	}
}

// TestNothingPreparedForInactiveSubscriptions: a job of a paused or
// disabled subscription is parked or dropped before any lease; Prepare
// sends none for it.
func TestNothingPreparedForInactiveSubscriptions(t *testing.T) {
	for _, st := range []subscription.Status{subscription.StatusPaused, subscription.StatusDisabled} {
		t.Run(string(st), func(t *testing.T) {
			f := askingFixture(t, status(http.StatusNoContent), time.Now)
			paused := *f.sub
			paused.Status = st
			j := f.job(1)
			j.Subscription = &paused
			f.a.Prepare(context.Background(), j)
			if j.lease != nil {
				t.Fatalf("Prepare sent a lease for a %s subscription", st)
			}
			active := f.job(1)
			f.a.Prepare(context.Background(), active)
			if active.lease == nil {
				t.Fatal("Prepare sent no lease for an active subscription")
			}
		})
	}
}
