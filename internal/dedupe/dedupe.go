// Package dedupe suppresses duplicate webhook deliveries with Redis: a short
// lease is taken on a delivery id before its request is sent, and a "done"
// mark replaces it after a 2xx, kept for the whole retry horizon so that
// retries, replays and other instances skip what was already delivered.
//
// Redis is an optimisation, not a gate: when it fails, callers are told to
// deliver anyway (at-least-once wins over at-most-once), the failure is
// counted and logged at most once a minute.
package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// State is what Acquire found for a delivery id.
type State uint8

const (
	// Acquired: this caller holds the lease and should send the request.
	Acquired State = iota
	// Done: the delivery already succeeded; skip it with outcome "duplicate".
	Done
	// Busy: another attempt holds a live lease; try again later.
	Busy
)

func (s State) String() string {
	switch s {
	case Acquired:
		return "acquired"
	case Done:
		return "done"
	case Busy:
		return "busy"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

const doneValue = "done"

// A lease is taken with one command on Redis 7 and later: SET key lease
// NX GET PX ms sets the key only when it is absent and returns what it
// held, nil when the lease was taken. One key holds either "done" or
// "lease:<token>", so the check and the lease are one atomic step and one
// round trip. Older servers refuse NX with GET as a syntax error, take no
// lease for it, and get acquireScript instead, which does the same in Lua
// at about twice the server's time.

// acquireScript returns a State: 0 Acquired, 1 Done, 2 Busy.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == 'done' then return 1 end
if v then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0
`)

// acquireCmd queues the lease of key on c: SET NX GET, or the script once
// the server refused that.
func (s *Store) acquireCmd(ctx context.Context, c doer, key, value string, ms int64) *redis.Cmd {
	if s.scriptOnly.Load() {
		return acquireScript.EvalSha(ctx, c, []string{key}, value, ms)
	}
	// Process, not Do: an autopipeliner batches what it processes but
	// sends each Do on a connection of its own.
	cmd := leaseCmd(ctx, key, value, ms)
	_ = c.Process(ctx, cmd)
	return cmd
}

// leaseCmd is the lease of key on Redis 7 and later: SET NX GET PX.
func leaseCmd(ctx context.Context, key, value string, ms int64) *redis.Cmd {
	return redis.NewCmd(ctx, "set", key, value, "nx", "get", "px", ms)
}

// doer is a client, an autopipeliner or a pipeline.
type doer interface {
	redis.Scripter
	Process(ctx context.Context, cmd redis.Cmder) error
}

// acquired reads the State from a reply of acquireCmd. refused says that
// the server does not know SET NX GET: nothing was done, and the script
// is used from now on.
func (s *Store) acquired(c *redis.Cmd) (st State, refused bool, err error) {
	if len(c.Args()) > 0 && c.Args()[0] == "set" {
		old, err := c.Text()
		switch {
		case err == redis.Nil:
			return Acquired, false, nil
		case err == nil && old == doneValue:
			return Done, false, nil
		case err == nil:
			return Busy, false, nil
		case isSyntaxError(err):
			if s.scriptOnly.CompareAndSwap(false, true) {
				s.log.Info("dedupe: redis refuses SET NX GET (before 7.0); leases are taken with a script")
			}
			return Acquired, true, err
		default:
			return Acquired, false, err
		}
	}
	code, err := c.Int64()
	if err != nil {
		return Acquired, redis.HasErrorPrefix(err, "NOSCRIPT"), err
	}
	return State(code), false, nil
}

// isSyntaxError says that the server answered "ERR syntax error".
func isSyntaxError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(strings.ToLower(re.Error()), "syntax error")
}

// releaseScript deletes the key only while it still holds our lease: once
// a lease expired, someone else may hold the key, or it may be done.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Store takes leases and done marks. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	doneTTL time.Duration
	log     *zap.Logger
	now     func() time.Time

	instance   string
	seq        atomic.Uint64
	errs       atomic.Uint64
	scriptOnly atomic.Bool // the server refused SET NX GET

	mu   sync.Mutex
	held map[string]string // delivery id → lease value this Store wrote

	// deferred is rdb when it is a deferred autopipeliner: done marks are
	// then queued on it without waiting, their replies read later (done).
	deferred *redis.AutoPipeliner
	done     doneQueue
}

// New returns a Store on rdb, which may be a single node or a Cluster.
func New(rdb redis.UniversalClient, opts ...Option) *Store {
	s := &Store{
		rdb:     rdb,
		prefix:  "herald:d:",
		doneTTL: 7 * 24 * time.Hour,
		log:     zap.NewNop(),
		now:     time.Now,
		held:    make(map[string]string),
	}
	s.deferred = deferredOf(rdb)
	for _, o := range opts {
		o(s)
	}
	s.log = sampled(s.log, s.now)
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.instance = hex.EncodeToString(b[:])
	return s
}

// Acquire takes a lease of the given length on deliveryID unless the delivery
// is already done or leased. The lease should outlast one attempt (the
// request timeout and a margin); it is rounded up to a millisecond.
//
// When Redis fails, Acquire returns Acquired together with the error, so
// that the caller delivers anyway.
//
// After Acquired, call MarkDone on success or Release on failure.
func (s *Store) Acquire(ctx context.Context, deliveryID string, lease time.Duration) (State, error) {
	value, ms := s.leaseValue(), leaseMillis(lease)
	return s.answer(ctx, deliveryID, value, ms, s.acquireCmd(ctx, s.rdb, s.prefix+deliveryID, value, ms))
}

// answer reads the State from the reply c to the lease value of
// deliveryID. A server that refused SET NX GET has its lease taken by the
// script instead; a failure is counted and answers Acquired; an Acquired
// lease is held until MarkDone or Release.
func (s *Store) answer(ctx context.Context, deliveryID, value string, ms int64, c *redis.Cmd) (State, error) {
	st, refused, err := s.acquired(c)
	if refused {
		st, _, err = s.acquired(acquireScript.Run(ctx, s.rdb, []string{s.prefix + deliveryID}, value, ms))
	}
	if err != nil {
		return Acquired, s.fail("acquire", err)
	}
	if st == Acquired {
		s.hold(deliveryID, value)
	}
	return st, nil
}

// MarkDone records that deliveryID was delivered, for the retry horizon
// (WithDoneTTL). It overwrites any lease: the request succeeded whoever
// holds the key now.
//
// On a deferred autopipeliner (redis.Client.AsyncAutoPipeline) it queues
// the mark and returns at once, nil: nothing waits for a mark, and the
// pipeline it rides also carries other callers' leases. Its reply is read
// by a later MarkDone or by Flush, and a failure counted in Errors and
// logged then.
func (s *Store) MarkDone(ctx context.Context, deliveryID string) error {
	s.forget(deliveryID)
	if s.deferred != nil {
		return s.markDoneDeferred(ctx, s.prefix+deliveryID)
	}
	if err := s.rdb.Set(ctx, s.prefix+deliveryID, doneValue, s.doneTTL).Err(); err != nil {
		return s.fail("mark done", err)
	}
	return nil
}

// Release drops this Store's lease on deliveryID after a failed attempt, so
// that a retry need not wait for it to expire. It never removes a lease
// taken by another attempt or a done mark; without a lease of ours it does
// nothing.
func (s *Store) Release(ctx context.Context, deliveryID string) error {
	value, ok := s.forget(deliveryID)
	if !ok {
		return nil
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{s.prefix + deliveryID}, value).Err(); err != nil {
		return s.fail("release", err)
	}
	return nil
}

// Errors returns how many Redis calls failed since New; a failed batch
// counts once.
func (s *Store) Errors() uint64 { return s.errs.Load() }

func (s *Store) leaseValue() string {
	return "lease:" + s.instance + "." + strconv.FormatUint(s.seq.Add(1), 36)
}

func (s *Store) hold(id, value string) {
	s.mu.Lock()
	s.held[id] = value
	s.mu.Unlock()
}

func (s *Store) forget(id string) (string, bool) {
	s.mu.Lock()
	v, ok := s.held[id]
	delete(s.held, id)
	s.mu.Unlock()
	return v, ok
}

// fail counts and logs a Redis failure. A caller that gave up (its context
// was cancelled) is not a Redis failure.
func (s *Store) fail(op string, err error) error {
	if !errors.Is(err, context.Canceled) {
		n := s.errs.Add(1)
		s.log.Warn("dedupe: redis unavailable, delivering without duplicate suppression",
			zap.String("op", op), zap.Error(err), zap.Uint64("redis_errors_total", n))
	}
	return fmt.Errorf("dedupe: %s: %w", op, err)
}

func leaseMillis(d time.Duration) int64 {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return max(int64(ms), 1)
}
