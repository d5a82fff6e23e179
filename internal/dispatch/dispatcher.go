// Package dispatch turns source records into deliveries: it matches each
// event against the subscriptions, queues one job per match on that
// subscription's endpoint, runs each endpoint's jobs with its own concurrency
// limit, and commits a source offset only when every job of its record is
// finished.
package dispatch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/subscription"
)

// Handler runs one job to a Result. Cross-cutting concerns wrap it as
// Middleware.
type Handler func(ctx context.Context, j *Job) Result

// Starter begins a job whose end may come later: it returns the Finisher
// that ends it, or nil and the result when the job ended at once.
// Attempter.Begin is one, with *Flight as the Finisher.
type Starter func(ctx context.Context, j *Job) (Finisher, Result)

// Finisher ends a job a Starter began. One that also has an Await()
// method, blocking until the job's response begins to arrive, has it called
// first, on the shallow stack of a fresh goroutine (see Flight.Await).
type Finisher interface{ Finish() Result }

func await(f Finisher) {
	if a, ok := f.(interface{ Await() }); ok {
		a.Await()
	}
}

// Flights adapts Attempter.Begin to a Starter.
func Flights(begin func(ctx context.Context, j *Job) (*Flight, Result)) Starter {
	return func(ctx context.Context, j *Job) (Finisher, Result) {
		f, res := begin(ctx, j)
		if f == nil {
			return nil, res
		}
		return f, res
	}
}

// Middleware wraps a Handler.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one listed is outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Dispatcher queues jobs per endpoint and runs them. One slow, failing or
// saturated endpoint never holds up another: each has its own queue and
// workers, and a job for an endpoint whose queue is full is parked in a retry
// tier instead of waiting.
type Dispatcher struct {
	handler Handler
	starter Starter // when set, runs jobs instead of handler
	retrier Retrier
	log     *zap.Logger

	maxPending    int
	endpointQueue int
	stallAfter    time.Duration

	slots chan struct{} // one per queued or running job: global backpressure
	// waits counts the times Submit waited for room in an endpoint's queue.
	waits atomic.Int64

	mu        sync.Mutex
	endpoints map[string]*endpoint
	stopped   bool

	// ctx is the context attempts run in; it is cancelled only when a drain
	// runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	running atomic.Int64
	queued  atomic.Int64
	parked  atomic.Int64

	finishers finishers
	awaiters  *spares[flight]
	// inline counts the workers waiting for their own last job's
	// response (leaveIfIdle); maxInline bounds them.
	inline       atomic.Int32
	maxInline    int32
	spareWorkers *spares[*endpoint]

	// prepare, when set, starts the next jobs of an endpoint ahead of
	// their turn (WithPreparer).
	prepare Preparer

	// admitBusy, when set, turns admission on (WithAdmission).
	admitBusy func() bool
	admit     *admission
	admitStop chan struct{}
}

// Option configures a Dispatcher.
type Option func(*Dispatcher)

// WithMaxPending bounds the jobs queued or running across all endpoints;
// Submit blocks beyond it. Default 10,000.
func WithMaxPending(n int) Option { return func(d *Dispatcher) { d.maxPending = n } }

// WithEndpointQueue bounds the jobs waiting for one endpoint beyond its
// max_in_flight running ones; more are parked. Default 256.
func WithEndpointQueue(n int) Option { return func(d *Dispatcher) { d.endpointQueue = n } }

// WithStallAfter is how long an endpoint whose queue is full may go without
// finishing an attempt within quickAttempt before its overflow is parked;
// until then Submit waits for room in its queue. Default 2s.
func WithStallAfter(d time.Duration) Option { return func(o *Dispatcher) { o.stallAfter = d } }

// quickAttempt is how fast an attempt must finish to show that its endpoint
// keeps up.
const quickAttempt = time.Second

// WithStarter runs jobs with s instead of the Handler given to New: a job
// s began is finished on a goroutine of its own, so a worker goes on to the
// endpoint's next job while the request is on its way, and what waits for a
// slow endpoint's response is a goroutine with a small stack (see
// delivery.Client.Start). A worker that finds no next job waits for its
// last one's response itself, up to maxInline of them at once.
func WithStarter(s Starter) Option { return func(d *Dispatcher) { d.starter = s } }

// WithRetrier parks jobs of saturated endpoints in a retry tier. Without one,
// Submit waits for the endpoint instead.
func WithRetrier(r Retrier) Option { return func(d *Dispatcher) { d.retrier = r } }

// WithAdmission makes Submit wait, while the process is short of CPU,
// until the jobs submitted in the last second that have not finished are
// fewer than a limit that falls to a few hundred while the CPU stays short
// and grows back to WithMaxPending's bound once it is not (see admission).
// busy reports whether the CPU was short since its last call; nil asks the
// runtime how long runnable goroutines waited for one.
func WithAdmission(busy func() bool) Option {
	return func(d *Dispatcher) {
		if busy == nil {
			busy = schedLatency(busyLatency)
		}
		d.admitBusy = busy
	}
}

// Preparer starts, ahead of a job's turn, what its attempt would otherwise
// begin by waiting for: *Attempter, whose Prepare sends the job's lease.
// Unprepare undoes it for a job that ends without an attempt.
type Preparer interface {
	Prepare(ctx context.Context, j *Job)
	Unprepare(ctx context.Context, j *Job)
}

// WithPreparer has p prepare the jobs next in line of each endpoint,
// aheadPerWorker for each of its workers, whenever a worker takes a job:
// their leases are then on their way while the jobs before them run, and
// a worker rarely waits for one.
func WithPreparer(p Preparer) Option { return func(d *Dispatcher) { d.prepare = p } }

// WithLogger sets the logger. Default: none.
func WithLogger(l *zap.Logger) Option { return func(d *Dispatcher) { d.log = l } }

// New returns a Dispatcher running jobs through h, or through the Starter of
// WithStarter when one is given (h may then be nil).
func New(h Handler, opts ...Option) *Dispatcher {
	d := &Dispatcher{
		handler:       h,
		log:           zap.NewNop(),
		maxPending:    10000,
		endpointQueue: 256,
		stallAfter:    2 * time.Second,
		endpoints:     make(map[string]*endpoint),
		maxInline:     maxInline,
	}
	for _, o := range opts {
		o(d)
	}
	d.slots = make(chan struct{}, d.maxPending)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.finishers = newFinishers(d.finishJob, d.maxPending)
	d.awaiters = newSpares(d.finishers.await)
	d.spareWorkers = newSpares(d.work)
	if d.admitBusy != nil {
		d.admit = newAdmission(int64(d.maxPending), busyFloor, d.admitBusy)
		d.admitStop = make(chan struct{})
		go d.admit.run(d.admitStop)
	}
	return d
}

type endpoint struct {
	id      string
	queue   []*Job
	head    int
	running int
	// space receives a token when a worker takes a job off the queue and
	// leaves it at most half full (see room).
	space chan struct{}
	// lastQuick is when an attempt last finished within quickAttempt (or
	// when the endpoint appeared).
	lastQuick time.Time
	// slots holds one token per request in flight: max_in_flight of them.
	slots chan struct{}
	// finishing counts jobs a Starter began and that have not finished;
	// the endpoint, and with it its slots, lives until they have.
	finishing int
	// ahead is the index in queue up to which jobs were given to the
	// Preparer.
	ahead int
}

func maxInFlight(sub *subscription.Subscription) int {
	if sub.MaxInFlight <= 0 {
		return subscription.DefaultMaxInFlight
	}
	return sub.MaxInFlight
}

// workers is how many attempts of an endpoint with max_in_flight n run at
// once: twice n, so that an attempt's work before and after its request
// overlaps the requests of others (see Job.HoldSlot), and at most
// maxStarters when a Starter runs them. An endpoint limited to one request
// in flight keeps one worker, and its deliveries their order.
func (d *Dispatcher) workers(n int) int {
	if n <= 1 {
		return 1
	}
	if d.starter != nil {
		return min(2*n, maxStarters)
	}
	return 2 * n
}

// maxStarters bounds the workers of one endpoint when a Starter runs the
// jobs. A worker then only begins attempts (lease, signature, writing the
// request) and goes on while the response is awaited elsewhere: a few
// dozen keep any endpoint's requests flowing, and each one more is a deep
// stack, thousands of them when a slow endpoint's queue fills up.
const maxStarters = 32

// Submit queues j on its subscription's endpoint. It blocks only while the
// dispatcher holds its maximum of pending jobs, and returns ctx's error if
// ctx ends first; j.Done is then never called.
func (d *Dispatcher) Submit(ctx context.Context, j *Job) error {
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if d.admit != nil {
		t, err := d.admit.admit(ctx)
		if err != nil {
			<-d.slots
			return err
		}
		j.admitted = t + 1
	}
	for {
		d.mu.Lock()
		if d.stopped {
			d.mu.Unlock()
			<-d.slots
			d.finish(j, Result{Step: Abandoned, Err: errStopped})
			return nil
		}
		sub := j.Subscription
		ep := d.endpoints[sub.ID]
		if ep == nil {
			ep = &endpoint{id: sub.ID, space: make(chan struct{}, 1), lastQuick: time.Now()}
			d.endpoints[sub.ID] = ep
		}
		limit := d.workers(maxInFlight(sub))
		if d.retrier != nil && ep.running >= limit && len(ep.queue)-ep.head >= d.endpointQueue {
			// A full queue alone is no reason to park: an endpoint that
			// keeps finishing attempts quickly is busy, not slow, and its
			// backlog is best served by waiting for it (backpressure on
			// the source). One that has not finished an attempt quickly
			// for stallAfter is stalled: its overflow goes to a tier at
			// once, so the source stalls at most stallAfter for it.
			if time.Since(ep.lastQuick) >= d.stallAfter {
				d.mu.Unlock()
				d.park(j)
				return nil
			}
			space := ep.space
			d.mu.Unlock()
			d.waits.Add(1)
			t := time.NewTimer(d.stallAfter / 10)
			select {
			case <-space:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				d.unadmit(j)
				<-d.slots
				return ctx.Err()
			}
			t.Stop()
			continue
		}
		ep.queue = append(ep.queue, j)
		d.queued.Add(1)
		if ep.running < limit {
			ep.running++
			d.wg.Add(1)
			d.mu.Unlock()
			d.spareWorkers.start(ep)
			return nil
		}
		d.mu.Unlock()
		return nil
	}
}

// room says whether a submitter waiting for ep's queue should wake: once
// the queue is down to half. It then refills the queue in one go, instead
// of waking, and waking the worker, for every job taken off it.
func (d *Dispatcher) room(ep *endpoint) bool {
	return len(ep.queue)-ep.head <= d.endpointQueue/2
}

// work runs an endpoint's queued jobs until the queue is empty, so a busy
// endpoint keeps its goroutines and an idle one has none.
func (d *Dispatcher) work(ep *endpoint) {
	defer d.wg.Done()
	var quick time.Time // when this worker's last attempt finished quickly
	var ahead []*Job    // jobs this worker prepares
	for {
		d.mu.Lock()
		if quick.After(ep.lastQuick) {
			ep.lastQuick = quick
		}
		if ep.head == len(ep.queue) {
			d.leave(ep)
			d.mu.Unlock()
			return
		}
		j := ep.queue[ep.head]
		ep.queue[ep.head] = nil
		ep.head++
		// last: no job was queued behind j when it was taken. Only then
		// can the queue be empty once j is begun; a busy endpoint's
		// workers skip leaveIfIdle's look under the lock.
		last := ep.head == len(ep.queue)
		if n := maxInFlight(j.Subscription); cap(ep.slots) != n {
			// New, or its subscription's max_in_flight changed: attempts
			// holding a slot of the old semaphore give it back there.
			ep.slots = make(chan struct{}, n)
		}
		j.slots = ep.slots
		if d.room(ep) {
			select {
			case ep.space <- struct{}{}:
			default:
			}
		}
		if ep.head > 64 && ep.head*2 > len(ep.queue) {
			n := copy(ep.queue, ep.queue[ep.head:])
			clear(ep.queue[n:])
			ep.queue = ep.queue[:n]
			ep.ahead = max(ep.ahead-ep.head, 0)
			ep.head = 0
		}
		if d.starter != nil {
			ep.finishing++
		}
		ahead = d.claimAhead(ep, ahead[:0])
		d.mu.Unlock()
		d.queued.Add(-1)
		for i, next := range ahead {
			d.prepare.Prepare(d.ctx, next)
			next.prep.Unlock()
			ahead[i] = nil
		}
		if d.starter != nil {
			fl, ok := d.begin(ep, j)
			if !ok {
				continue
			}
			if last && d.leaveIfIdle(ep) {
				// Nothing left for this worker: it waits for the
				// response and finishes the job itself. Handing both on
				// would wake an awaiter and park this worker, for every
				// job of a fan-out to many endpoints, where each
				// endpoint has a job at a time.
				await(fl.f)
				d.finishJob(fl)
				d.inline.Add(-1)
				return
			}
			d.awaiters.start(fl)
			continue
		}
		start := time.Now()
		d.run(j)
		if end := time.Now(); end.Sub(start) < quickAttempt {
			quick = end
		}
	}
}

// aheadPerWorker is how many jobs are prepared ahead for each worker of an
// endpoint. A lease's answer takes a pipeline's round trip, in which a
// busy endpoint's workers take several jobs each; one per worker left
// them waiting for a third of their leases in scenario 2 of herald-bench.
const aheadPerWorker = 4

// claimAhead appends to dst the jobs of ep's queue that are next in line
// and not yet prepared, aheadPerWorker for each of ep's workers, and locks
// each one's prep: a worker that takes one of them waits until it is
// prepared. Call it with d.mu held.
func (d *Dispatcher) claimAhead(ep *endpoint, dst []*Job) []*Job {
	if d.prepare == nil {
		return dst
	}
	from := max(ep.ahead, ep.head)
	to := min(len(ep.queue), ep.head+aheadPerWorker*ep.running)
	for _, j := range ep.queue[from:max(from, to)] {
		j.prep.Lock()
		dst = append(dst, j)
	}
	ep.ahead = max(from, to)
	return dst
}

// prepared waits until j is prepared, if it was given to the Preparer,
// and undoes that when j ends without an attempt.
func (d *Dispatcher) prepared(j *Job, attempted bool) {
	if d.prepare == nil {
		return
	}
	j.prep.Lock()
	//lint:ignore SA2001 the lock is only a wait for the worker preparing j
	j.prep.Unlock()
	if !attempted {
		d.prepare.Unprepare(d.ctx, j)
	}
}

// begin starts j with the Starter. It returns the flight to finish once
// its response begins to arrive, or false when j ended at once.
func (d *Dispatcher) begin(ep *endpoint, j *Job) (flight, bool) {
	start := time.Now()
	if abandoned(j) {
		d.prepared(j, false)
		d.finished(ep, start, j, Result{Step: Abandoned, Err: errRevoked})
		return flight{}, false
	}
	d.prepared(j, true)
	d.running.Add(1)
	f, res := d.starter(d.ctx, j)
	if f == nil {
		d.running.Add(-1)
		d.finished(ep, start, j, res)
		return flight{}, false
	}
	d.wg.Add(1)
	return flight{ep: ep, start: start, j: j, f: f}, true
}

// maxInline bounds the workers that wait for their own last job's
// response. Each keeps the stack its attempt grew, several KiB, while it
// waits: beyond the bound, the wait goes to an awaiter, whose stack stays
// small however long the endpoint takes. The bound is twice admission's
// floor: while the CPU is short, when the hand-offs cost most, admission
// keeps the jobs in flight near that floor, and every worker with no next
// job waits itself.
const maxInline = 2 * busyFloor

// leaveIfIdle reports whether the worker that has just begun a job may
// wait for its response and finish it itself: when ep's queue is empty,
// and fewer than maxInline workers do so. It then counts the worker out
// of ep, as work does when it finds the queue empty, so that a job
// submitted meanwhile starts another worker rather than waiting behind
// the response.
func (d *Dispatcher) leaveIfIdle(ep *endpoint) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ep.head != len(ep.queue) {
		return false
	}
	if d.inline.Add(1) > d.maxInline {
		d.inline.Add(-1)
		return false
	}
	d.leave(ep)
	return true
}

// leave counts a worker out of ep, whose queue is empty, under d.mu; ep
// goes once nothing of it is left.
func (d *Dispatcher) leave(ep *endpoint) {
	ep.running--
	ep.queue = ep.queue[:0]
	ep.head, ep.ahead = 0, 0
	if ep.running == 0 && ep.finishing == 0 {
		delete(d.endpoints, ep.id)
	}
}

// finishJob ends a job begin left in flight.
func (d *Dispatcher) finishJob(fl flight) {
	defer d.wg.Done()
	res := fl.f.Finish()
	d.running.Add(-1)
	d.finished(fl.ep, fl.start, fl.j, res)
}

// finished ends a job begin started: it notes a quick attempt, lets the
// endpoint go once nothing of it is left, and finishes j.
func (d *Dispatcher) finished(ep *endpoint, start time.Time, j *Job, res Result) {
	end := time.Now()
	d.mu.Lock()
	if end.Sub(start) < quickAttempt && end.After(ep.lastQuick) {
		ep.lastQuick = end
	}
	ep.finishing--
	if ep.running == 0 && ep.finishing == 0 && d.endpoints[ep.id] == ep {
		delete(d.endpoints, ep.id)
	}
	d.mu.Unlock()
	d.finish(j, res)
}

func (d *Dispatcher) run(j *Job) {
	if abandoned(j) {
		d.prepared(j, false)
		d.finish(j, Result{Step: Abandoned, Err: errRevoked})
		return
	}
	d.prepared(j, true)
	d.running.Add(1)
	res := d.handler(d.ctx, j)
	d.running.Add(-1)
	d.finish(j, res)
}

func (d *Dispatcher) finish(j *Job, res Result) {
	d.unadmit(j)
	<-d.slots
	if j.Done != nil {
		j.Done(res)
	}
}

// unadmit stops counting j against the admission limit.
func (d *Dispatcher) unadmit(j *Job) {
	if j.admitted > 0 {
		d.admit.done(j.admitted - 1)
		j.admitted = 0
	}
}

// park hands a job of a saturated endpoint to a retry tier without spending
// an attempt, off the caller's goroutine so the source keeps moving.
func (d *Dispatcher) park(j *Job) {
	d.parked.Add(1)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		err := d.retrier.Retry(d.ctx, j, Retry{Park: true, LastError: "endpoint saturated", AttemptedAt: time.Now()})
		if err != nil {
			d.log.Warn("park failed; the delivery stays unfinished and will be retried from its source",
				zap.String("delivery_id", j.DeliveryID), zap.Error(err))
			d.finish(j, Result{Step: Abandoned, Err: err})
			return
		}
		d.finish(j, Result{Step: Parked})
	}()
}

func abandoned(j *Job) bool {
	if j.Abandon == nil {
		return false
	}
	select {
	case <-j.Abandon:
		return true
	default:
		return false
	}
}

// Stats is a snapshot of the dispatcher's load.
type Stats struct {
	Running, Queued, Parked int64
	// AdmitLimit is the admission limit now (WithAdmission); 0 without.
	AdmitLimit int64
}

// Stats returns current counts.
func (d *Dispatcher) Stats() Stats {
	s := Stats{Running: d.running.Load(), Queued: d.queued.Load(), Parked: d.parked.Load()}
	if d.admit != nil {
		s.AdmitLimit = d.admit.current()
	}
	return s
}

// Close stops accepting jobs and waits for queued and running ones. Jobs not
// yet started whose Abandon channel is closed finish as Abandoned; the rest
// run. If ctx ends first, running attempts are cancelled.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		d.spareWorkers.close()
		d.finishers.close()
		d.awaiters.close()
		if d.admitStop != nil {
			close(d.admitStop)
		}
		close(done)
	}()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-ctx.Done():
		d.cancel()
		<-done
		return ctx.Err()
	}
}
