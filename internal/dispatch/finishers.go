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
	// maxFinishers bounds the goroutines kept to finish jobs; beyond it, a
	// job waits for one of them.
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
// time) hands the job to an idle finisher, or, when none is idle, finishes
// it itself and stays on as a finisher; beyond maxFinishers it waits for
// one.
type finishers struct {
	finish func(flight)
	max    int32       // maxFinishers, but for tests
	work   chan flight // unbuffered: a send succeeds only to an idle finisher
	quit   chan struct{}
	n      atomic.Int32
	wg     sync.WaitGroup
	once   sync.Once
}

func newFinishers(finish func(flight)) finishers {
	return finishers{finish: finish, max: maxFinishers, work: make(chan flight), quit: make(chan struct{})}
}

// await waits until fl's response begins to arrive, then has it finished.
// Its frame and the ones below it while it waits are all an awaiter's
// stack holds, thousands of times over with a slow endpoint: the hand-off,
// with its selects, timers and finisher loop, is a frame of its own that
// the wait never has beneath it.
func (p *finishers) await(fl flight) {
	await(fl.f)
	p.handOff(fl)
}

// handOff gives fl to an idle finisher, or finishes it and stays on as one.
func (p *finishers) handOff(fl flight) {
	select {
	case p.work <- fl:
		return
	default:
	}
	if p.n.Add(1) > p.max {
		// Every finisher is busy: wait for one rather than finish here,
		// which would grow this goroutine's stack for a single job.
		// A finisher that went idle meanwhile may have left: after a
		// second, or when the dispatcher closes, finish it here.
		p.n.Add(-1)
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case p.work <- fl:
		case <-t.C:
			p.finish(fl)
		case <-p.quit:
			p.finish(fl)
		}
		return
	}
	// Counted before fl is finished: close waits for the last job, then
	// for the finishers.
	p.wg.Add(1)
	defer func() {
		p.n.Add(-1)
		p.wg.Done()
	}()
	p.finish(fl)
	// The timer is not reset for every job, which would cost more than
	// the job's stack growth did: when it fires, a finisher that worked
	// since the last time goes on.
	idle := time.NewTimer(finisherIdle)
	defer idle.Stop()
	worked := false
	for {
		select {
		case fl := <-p.work:
			p.finish(fl)
			worked = true
		case <-idle.C:
			if !worked {
				return
			}
			worked = false
			idle.Reset(finisherIdle)
		case <-p.quit:
			return
		}
	}
}

// close lets idle finishers go once no job is left to finish, and waits
// for them.
func (p *finishers) close() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}

// maxIdleSpares bounds the goroutines kept idle by each of the
// dispatcher's spares; beyond it, one exits once it has run its function.
// A fan-out to a thousand endpoints keeps a worker for each.
const maxIdleSpares = 1024

// spares run a function, each call on a goroutine of its own, on goroutines
// kept between calls: a fresh goroutine grows its stack, copying it, as
// deep as the function goes, every time. The dispatcher has two. Its
// awaiters wait for responses, as many at once as there are requests in
// flight, and then hand the job on, which goes deeper than the wait. Its
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
