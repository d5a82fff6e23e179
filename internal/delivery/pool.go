package delivery

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"
)

// idleConnTimeout is how long a keep-alive connection may sit unused before
// it is closed, as net/http's DefaultTransport has it.
const idleConnTimeout = 90 * time.Second

// pconn is one connection to an endpoint, in use by one attempt or idle in
// the pool.
type pconn struct {
	conn net.Conn
	key  poolKey
	// first holds the start of the response, read straight from the
	// connection so that no pooled buffer is held while the endpoint takes
	// its time to answer; the response reader then reads through it.
	first prefixReader
	// written counts the bytes of the current request that reached the
	// connection.
	written int

	// Under the pool's lock: when pc was last put back, and its timer,
	// set to expire it (armed) or fired.
	idleSince time.Time
	timer     *time.Timer
	armed     bool
}

func newPconn(conn net.Conn, key poolKey) *pconn {
	pc := &pconn{conn: conn, key: key}
	pc.first.conn = conn
	return pc
}

// Write writes to the connection, counting what it took.
func (pc *pconn) Write(p []byte) (int, error) {
	n, err := pc.conn.Write(p)
	pc.written += n
	return n, err
}

// prefixSize is how much of a response awaitResponse reads: the whole of
// most of them (a 204 with a Date header is about 70 bytes), so that the
// response reader needs no further read from the connection.
const prefixSize = 128

// prefixReader returns what was read while waiting for the response, then
// reads the connection.
type prefixReader struct {
	conn       net.Conn
	b          [prefixSize]byte
	start, end int
}

// awaitResponse blocks until the endpoint sends the start of its
// response, the connection fails, or its deadline passes.
func (r *prefixReader) awaitResponse() error {
	for {
		n, err := r.conn.Read(r.b[:])
		if n > 0 {
			r.start, r.end = 0, n
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// buffered is how many bytes read by awaitResponse are still to be read.
func (r *prefixReader) buffered() int { return r.end - r.start }

func (r *prefixReader) Read(p []byte) (int, error) {
	if r.start == r.end {
		return r.conn.Read(p)
	}
	n := copy(p, r.b[r.start:r.end])
	r.start += n
	return n, nil
}

// trustIdle is how long a connection put back in the pool is used again
// without checking that the endpoint has not closed it.
const trustIdle = 100 * time.Millisecond

// checkIdleConn is connUsable; tests replace it to reuse a dead connection.
var checkIdleConn = connUsable

// connPool keeps idle keep-alive connections per endpoint: at most maxIdle
// of each, each for at most timeout, the most recently used handed out
// first. There is no limit on connections in use, and no goroutine: a timer
// closes a connection left idle too long.
//
// At most maxDials connections to an endpoint are dialled at once. A
// request that finds no idle connection and every dial slot taken waits
// for whichever comes first, a connection put back or a slot: a burst of
// thousands of requests to one host reuses the connections its first
// answers free, instead of flooding the host with connection attempts
// that overflow its accept queue (each a new connection and a goroutine at
// the other end, and, once its backlog is full, a handshake the host only
// completes seconds later).
type connPool struct {
	maxIdle  int
	maxDials int
	timeout  time.Duration

	mu    sync.Mutex
	idle  map[poolKey][]*pconn
	dials map[poolKey]*hostDials // only while dials or waiters are under way
}

// hostDials are the dials under way to an endpoint and the requests
// waiting for one, oldest first. A waiter receives a connection put back,
// or nil: a dial slot, now its own.
type hostDials struct {
	dialing int
	waiters []chan *pconn
}

// firstWaiter takes the longest waiting request off h, under the pool's
// lock; nil when none waits (or h is nil).
func (h *hostDials) firstWaiter() chan *pconn {
	if h == nil || len(h.waiters) == 0 {
		return nil
	}
	w := h.waiters[0]
	h.waiters = slices.Delete(h.waiters, 0, 1)
	return w
}

func newConnPool(maxIdle, maxDials int, timeout time.Duration) *connPool {
	return &connPool{maxIdle: maxIdle, maxDials: max(maxDials, 1), timeout: timeout,
		idle: make(map[poolKey][]*pconn), dials: make(map[poolKey]*hostDials)}
}

// errNoDialSlot ends a wait for a connection at the attempt's deadline.
var errNoDialSlot = errors.New("waiting for a connection to the endpoint")

// take returns an idle connection to key that still looks usable, or nil
// and a dial slot, which the caller gives back with dialed once its dial
// is over. With every slot taken it waits, until ctx ends or deadline (if
// not zero) passes.
func (p *connPool) take(ctx context.Context, key poolKey, deadline time.Time) (*pconn, error) {
	for {
		p.mu.Lock()
		pc := p.popIdle(key)
		if pc == nil {
			h := p.dials[key]
			if h == nil {
				h = &hostDials{}
				p.dials[key] = h
			}
			if h.dialing < p.maxDials {
				h.dialing++
				p.mu.Unlock()
				return nil, nil
			}
			w := make(chan *pconn, 1)
			h.waiters = append(h.waiters, w)
			p.mu.Unlock()
			return p.wait(ctx, key, w, deadline)
		}
		p.mu.Unlock()
		// Its timer is left running: when it fires, expire finds pc gone
		// or put back, and leaves it.
		//
		// The endpoint may have closed the connection while it was idle
		// (many servers time keep-alive out within seconds); sending on it
		// would fail an attempt for nothing. A connection put back moments
		// ago, as under load, is not worth the system call.
		idle := time.Since(pc.idleSince)
		if idle >= p.timeout || idle >= trustIdle && !checkIdleConn(pc.conn) {
			pc.conn.Close()
			continue
		}
		return pc, nil
	}
}

// popIdle takes the most recently put back idle connection to key, under
// p.mu.
func (p *connPool) popIdle(key poolKey) *pconn {
	list := p.idle[key]
	n := len(list)
	if n == 0 {
		return nil
	}
	pc := list[n-1]
	list[n-1] = nil
	if n == 1 {
		delete(p.idle, key)
	} else {
		p.idle[key] = list[:n-1]
	}
	return pc
}

// wait waits on w for a connection or a dial slot.
func (p *connPool) wait(ctx context.Context, key poolKey, w chan *pconn, deadline time.Time) (*pconn, error) {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case pc := <-w:
		// A connection put back just now needs no check.
		return pc, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = errNoDialSlot
	}
	p.mu.Lock()
	if h := p.dials[key]; h != nil {
		if i := slices.Index(h.waiters, w); i >= 0 {
			h.waiters = slices.Delete(h.waiters, i, i+1)
			p.mu.Unlock()
			return nil, err
		}
	}
	p.mu.Unlock()
	// Served meanwhile: pass on what it was given.
	if pc := <-w; pc != nil {
		p.put(pc)
	} else {
		p.dialed(key)
	}
	return nil, err
}

// dialed gives back the dial slot take gave, once the dial succeeded or
// failed: to the longest waiting request, if any.
func (p *connPool) dialed(key poolKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.dials[key]
	if w := h.firstWaiter(); w != nil {
		w <- nil
		return
	}
	if h.dialing--; h.dialing == 0 {
		delete(p.dials, key)
	}
}

// put hands pc to the longest waiting request to its endpoint, or keeps it
// for reuse, or closes it when its endpoint already has maxIdle idle
// connections.
func (p *connPool) put(pc *pconn) {
	p.mu.Lock()
	if w := p.dials[pc.key].firstWaiter(); w != nil {
		p.mu.Unlock()
		w <- pc
		return
	}
	list := p.idle[pc.key]
	if len(list) >= p.maxIdle {
		p.mu.Unlock()
		pc.conn.Close()
		return
	}
	pc.idleSince = time.Now()
	p.idle[pc.key] = append(list, pc)
	// A timer is not reset for every request, which costs more than the
	// request's other work with thousands of connections: a running one
	// fires early, and expire sets it for the rest.
	switch {
	case pc.timer == nil:
		pc.timer = time.AfterFunc(p.timeout, func() { p.expire(pc) })
		pc.armed = true
	case !pc.armed:
		pc.timer.Reset(p.timeout)
		pc.armed = true
	}
	p.mu.Unlock()
}

// expire closes pc if it is still idle and has been for the whole timeout.
func (p *connPool) expire(pc *pconn) {
	p.mu.Lock()
	list := p.idle[pc.key]
	i := -1
	for j, c := range list {
		if c == pc {
			i = j
			break
		}
	}
	pc.armed = false
	if i < 0 {
		// In use: put arms the timer again.
		p.mu.Unlock()
		return
	}
	if left := p.timeout - time.Since(pc.idleSince); left > 0 {
		// Taken and put back since the timer was set.
		pc.timer.Reset(left)
		pc.armed = true
		p.mu.Unlock()
		return
	}
	copy(list[i:], list[i+1:])
	list[len(list)-1] = nil
	if len(list) == 1 {
		delete(p.idle, pc.key)
	} else {
		p.idle[pc.key] = list[:len(list)-1]
	}
	p.mu.Unlock()
	pc.conn.Close()
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = make(map[poolKey][]*pconn)
	p.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.timer.Stop()
			pc.conn.Close()
		}
	}
}

// idleCount returns how many idle connections key has.
func (p *connPool) idleCount(key poolKey) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[key])
}
