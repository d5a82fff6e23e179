package dispatch

import (
	"sync"
	"sync/atomic"
	"time"
)

// flight is a job a Starter began, on its way to its endpoint.
type flight struct {
	ep    *endpoint
	start time.Time
	j     *Job
	f     Finisher
}

const (
	// maxFinishers bounds the goroutines kept to finish jobs; beyond it,
	// jobs queue for them.
	maxFinishers = 256
	// finisherIdle is how long a finisher waits for work before it exits:
	// between one and two of it.
	finisherIdle = 10 * time.Second
)

// finishers end jobs on long-lived goroutines. Ending a job parses the
// response, records the outcome and talks to Redis, which takes several
// KiB of stack: a fresh goroutine per job would grow its stack, copying
// it each time, for every request. Instead the goroutine that waited for
// the response (on a stack that stayed small while the endpoint took its
// time) queues the job for the finishers and goes back to waiting for the
// next response; when no finisher is idle and fewer than maxFinishers run,
// it stays on as one.
//
// The queue holds every job whose response came while the finishers were
// busy, so that its awaiter need not wait with it: a fan-out to many
// endpoints can have thousands of them at once, and a goroutine and a
// timer each, parked and woken, cost more than finishing them did.
type finishers struct {
	finish func(flight)
	max    int32       // maxFinishers, but for tests
	queue  chan flight // buffered for every job that can be running
	quit   chan struct{}
	n      atomic.Int32 // finishers running
	idle   atomic.Int32 // of them, waiting for a job
	once   sync.Once
}

// newFinishers returns finishers for at most jobs running at once: a job
// queued beyond them would wait for room.
func newFinishers(finish func(flight), jobs int) finishers {
	return finishers{finish: finish, max: maxFinishers, queue: make(chan flight, max(jobs, 1)), quit: make(chan struct{})}
}

// await waits until fl's response begins to arrive, then has it finished.
// Its frame and the ones below it while it waits are all an awaiter's
// stack holds, thousands of times over with a slow endpoint: the hand-off,
// with its finisher loop, is a frame of its own that the wait never has
// beneath it.
func (p *finishers) await(fl flight) {
	await(fl.f)
	p.handOff(fl)
}

// handOff queues fl for the finishers, and serves as one when none is idle
// and fewer than max run.
//
// A finisher that leaves first counts itself out of idle and n, then
// takes a last look at the queue; handOff queues fl first, then reads idle
// and n. Whichever goes second sees the other, so fl is never left queued
// with no finisher to take it.
func (p *finishers) handOff(fl flight) {
	p.queue <- fl
	if p.idle.Load() > 0 {
		return
	}
	if p.n.Add(1) > p.max {
		p.n.Add(-1)
		return
	}
	p.serve()
}

// serve finishes queued jobs until it has been idle for finisherIdle, or
// the dispatcher closes. The timer is not reset for every job, which
// would cost more than the job's stack growth did: when it fires, a
// finisher that worked since the last time goes on.
func (p *finishers) serve() {
	idle := time.NewTimer(finisherIdle)
	defer idle.Stop()
	worked := true
	for {
		select {
		case fl := <-p.queue:
			p.finish(fl)
			worked = true
			continue
		default:
		}
		p.idle.Add(1)
		select {
		case fl := <-p.queue:
			p.idle.Add(-1)
			p.finish(fl)
			worked = true
		case <-idle.C:
			p.idle.Add(-1)
			if !worked && p.leave() {
				return
			}
			worked = false
			idle.Reset(finisherIdle)
		case <-p.quit:
			p.idle.Add(-1)
			if p.leave() {
				return
			}
		}
	}
}

// leave counts a finisher out, unless a job was queued meanwhile: it then
// stays and reports false.
func (p *finishers) leave() bool {
	p.n.Add(-1)
	select {
	case fl := <-p.queue:
		p.n.Add(1)
		p.finish(fl)
		return false
	default:
		return true
	}
}

// close lets the finishers go once no job is left to finish. They are
// awaiters that stayed on: the awaiters' close waits for them.
func (p *finishers) close() {
	p.once.Do(func() { close(p.quit) })
}

// maxIdleSpares bounds the goroutines kept idle by each of the
// dispatcher's spares; beyond it, one exits once it has run its function.
// A fan-out to a thousand endpoints keeps a worker for each.
const maxIdleSpares = 1024

// spares run a function, each call on a goroutine of its own, on goroutines
// kept between calls: a fresh goroutine grows its stack, copying it, as
// deep as the function goes, every time. The dispatcher has two. Its
// awaiters wait for responses, as many at once as there are requests in
// flight but for those their own workers wait for (leaveIfIdle), and then
// hand the job on, which goes deeper than the wait. Its
// workers begin endpoints' attempts, and a thousand endpoints each with a
// little work stop and start them all the time. A goroutine that ran the
// function waits for the next call, up to maxIdleSpares of them; the
// runtime shrinks the stacks of those left idle. They keep no timer: with
// thousands of requests in flight, a timer each made the runtime's timer
// heap cost more than the stacks.
type spares[T any] struct {
	run     func(T)
	maxIdle int32  // maxIdleSpares, but for tests
	work    chan T // unbuffered: a send succeeds only to an idle goroutine
	quit    chan struct{}
	n, idle atomic.Int32 // goroutines, and those of them idle
	wg      sync.WaitGroup
	once    sync.Once
}

func newSpares[T any](run func(T)) *spares[T] {
	return &spares[T]{run: run, maxIdle: maxIdleSpares, work: make(chan T), quit: make(chan struct{})}
}

// start runs run(v) on an idle goroutine, or on a new one.
func (p *spares[T]) start(v T) {
	select {
	case p.work <- v:
		return
	default:
	}
	p.n.Add(1)
	p.wg.Add(1)
	go p.serve(v)
}

func (p *spares[T]) serve(v T) {
	defer func() {
		p.n.Add(-1)
		p.wg.Done()
	}()
	for {
		p.run(v)
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case v = <-p.work:
			p.idle.Add(-1)
		case <-p.quit:
			p.idle.Add(-1)
			return
		}
	}
}

// close lets idle goroutines go once no call is left, and waits for them.
// The awaiters' comes after the finishers' close: an awaiter that found no
// finisher idle serves as one until then.
func (p *spares[T]) close() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}
