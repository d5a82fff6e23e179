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

// acquireScript returns a State: 0 Acquired, 1 Done, 2 Busy. One key holds
// either "done" or "lease:<token>", so the check and the lease are one
// atomic step and one round trip.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == 'done' then return 1 end
if v then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0
`)

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

	instance string
	seq      atomic.Uint64
	errs     atomic.Uint64

	mu   sync.Mutex
	held map[string]string // delivery id → lease value this Store wrote
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
	value := s.leaseValue()
	code, err := acquireScript.Run(ctx, s.rdb, []string{s.prefix + deliveryID}, value, leaseMillis(lease)).Int64()
	if err != nil {
		return Acquired, s.fail("acquire", err)
	}
	st := State(code)
	if st == Acquired {
		s.hold(deliveryID, value)
	}
	return st, nil
}

// MarkDone records that deliveryID was delivered, for the retry horizon
// (WithDoneTTL). It overwrites any lease: the request succeeded whoever
// holds the key now.
func (s *Store) MarkDone(ctx context.Context, deliveryID string) error {
	s.forget(deliveryID)
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
