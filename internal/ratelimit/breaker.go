package ratelimit

import (
	"strconv"
	"sync"
	"time"
)

// State is the state of one subscription's circuit.
type State uint8

const (
	Closed   State = iota // requests flow
	Open                  // requests are held back until the cooldown ends
	HalfOpen              // one probe request at a time decides
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Breaker is a circuit breaker per subscription, local to this instance:
// Threshold consecutive failures open a circuit; after Cooldown it lets one
// probe through, whose success closes it and whose failure opens it again.
// Safe for concurrent use.
type Breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	circuits  map[string]*circuit // only subscriptions with failures or not closed
	listeners []func(id string, from, to State)
}

type circuit struct {
	state    State
	failures int
	openedAt time.Time
	probeAt  time.Time // zero: no probe in flight
}

type change struct {
	id       string
	from, to State
}

// BreakerOption configures a Breaker.
type BreakerOption func(*Breaker)

// WithThreshold sets how many consecutive failures open a circuit. Default 5.
func WithThreshold(n int) BreakerOption { return func(b *Breaker) { b.threshold = max(1, n) } }

// WithCooldown sets how long a circuit stays open before a probe, and how
// long a probe may go unreported before another is let through. Default 30s.
func WithCooldown(d time.Duration) BreakerOption { return func(b *Breaker) { b.cooldown = d } }

// WithClock sets the time source. Default time.Now.
func WithClock(now func() time.Time) BreakerOption { return func(b *Breaker) { b.now = now } }

// NewBreaker returns a Breaker with every circuit closed.
func NewBreaker(opts ...BreakerOption) *Breaker {
	b := &Breaker{threshold: 5, cooldown: 30 * time.Second, now: time.Now, circuits: make(map[string]*circuit)}
	for _, o := range opts {
		o(b)
	}
	return b
}

// OnChange adds fn, called after every state change, outside the Breaker's
// lock and possibly from several goroutines at once.
func (b *Breaker) OnChange(fn func(id string, from, to State)) {
	b.mu.Lock()
	b.listeners = append(b.listeners, fn)
	b.mu.Unlock()
}

// Allow reports whether a request to id may be sent now. In half-open it
// is true for one probe at a time: the caller must report the probe with
// Success or Failure.
func (b *Breaker) Allow(id string) bool {
	b.mu.Lock()
	c := b.circuits[id]
	if c == nil {
		b.mu.Unlock()
		return true
	}
	now := b.now()
	ch := b.advance(id, c, now)
	ok := true
	switch c.state {
	case Open:
		ok = false
	case HalfOpen:
		// A probe that never reported (its delivery parked or crashed)
		// must not hold the circuit half-open for ever.
		ok = c.probeAt.IsZero() || now.Sub(c.probeAt) >= b.cooldown
		if ok {
			c.probeAt = now
		}
	}
	b.notify(ch)
	return ok
}

// Success records a successful request to id. It closes a half-open
// circuit; in an open one it is a request sent before the circuit opened,
// and changes nothing.
func (b *Breaker) Success(id string) {
	b.mu.Lock()
	c := b.circuits[id]
	if c == nil {
		b.mu.Unlock()
		return
	}
	ch := b.advance(id, c, b.now())
	switch c.state {
	case Closed:
		delete(b.circuits, id)
	case HalfOpen:
		delete(b.circuits, id)
		ch = append(ch, change{id, HalfOpen, Closed})
	}
	b.notify(ch)
}

// Failure records a failed request to id.
func (b *Breaker) Failure(id string) {
	b.mu.Lock()
	now := b.now()
	c := b.circuits[id]
	if c == nil {
		c = &circuit{}
		b.circuits[id] = c
	}
	ch := b.advance(id, c, now)
	switch c.state {
	case Closed:
		c.failures++
		if c.failures >= b.threshold {
			c.state, c.openedAt = Open, now
			ch = append(ch, change{id, Closed, Open})
		}
	case HalfOpen:
		c.state, c.openedAt, c.probeAt = Open, now, time.Time{}
		ch = append(ch, change{id, HalfOpen, Open})
	}
	b.notify(ch)
}

// State returns id's state now.
func (b *Breaker) State(id string) State {
	b.mu.Lock()
	c := b.circuits[id]
	if c == nil {
		b.mu.Unlock()
		return Closed
	}
	ch := b.advance(id, c, b.now())
	st := c.state
	b.notify(ch)
	return st
}

// advance moves an open circuit whose cooldown has passed to half-open.
// b.mu must be held.
func (b *Breaker) advance(id string, c *circuit, now time.Time) []change {
	if c.state != Open || now.Sub(c.openedAt) < b.cooldown {
		return nil
	}
	c.state, c.failures, c.probeAt = HalfOpen, 0, time.Time{}
	return []change{{id, Open, HalfOpen}}
}

// notify releases b.mu and tells the listeners about ch.
func (b *Breaker) notify(ch []change) {
	listeners := b.listeners
	b.mu.Unlock()
	for _, c := range ch {
		for _, fn := range listeners {
			fn(c.id, c.from, c.to)
		}
	}
}
