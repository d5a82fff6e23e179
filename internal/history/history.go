// Package history keeps the recent delivery attempts of every subscription
// in Redis, for the attempts API and the dashboard, and the health counters
// derived from them: recent success rate, last error, dead letters.
//
// Attempts arrive from the outcome hook on the delivery path, which must
// never wait on Redis: Add only queues them, and Run writes the queue in
// pipelined batches (LPUSH, LTRIM per subscription). When the queue is full
// an attempt is dropped and counted. History is a convenience, not a
// record: herald.outcomes is the record.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/herald-dev/herald/internal/jsonenc"
	"github.com/herald-dev/herald/internal/outcome"
)

// Attempt is one delivery attempt as the attempts API shows it.
type Attempt struct {
	DeliveryID string        `json:"delivery_id"`
	EventID    string        `json:"event_id"`
	EventType  string        `json:"event_type"`
	Attempt    int           `json:"attempt"`
	State      outcome.State `json:"state"`
	HTTPStatus int           `json:"http_status,omitempty"`
	LatencyMS  float64       `json:"latency_ms"`
	Error      string        `json:"error,omitempty"`
	// Response is the first KiB of the response body.
	Response string    `json:"response,omitempty"`
	TraceID  string    `json:"trace_id,omitempty"`
	At       time.Time `json:"attempted_at"`
}

// appendJSON appends a as encoding/json writes it, without reflection:
// history keeps one entry per attempt.
func (a *Attempt) appendJSON(b []byte) []byte {
	b = append(b, `{"delivery_id":`...)
	b = jsonenc.AppendString(b, a.DeliveryID, true)
	b = append(b, `,"event_id":`...)
	b = jsonenc.AppendString(b, a.EventID, true)
	b = append(b, `,"event_type":`...)
	b = jsonenc.AppendString(b, a.EventType, true)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(a.Attempt), 10)
	b = append(b, `,"state":`...)
	b = jsonenc.AppendString(b, string(a.State), true)
	if a.HTTPStatus != 0 {
		b = append(b, `,"http_status":`...)
		b = strconv.AppendInt(b, int64(a.HTTPStatus), 10)
	}
	b = append(b, `,"latency_ms":`...)
	b = jsonenc.AppendFloat(b, a.LatencyMS)
	if a.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonenc.AppendString(b, a.Error, true)
	}
	if a.Response != "" {
		b = append(b, `,"response":`...)
		b = jsonenc.AppendString(b, a.Response, true)
	}
	if a.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = jsonenc.AppendString(b, a.TraceID, true)
	}
	b = append(b, `,"attempted_at":`...)
	b = jsonenc.AppendTime(b, a.At)
	return append(b, '}')
}

// Health summarises a subscription's recent deliveries.
type Health struct {
	// Attempts and Delivered count the recent attempts (at most the
	// history's cap) and how many of them got a 2xx.
	Attempts  int `json:"recent_attempts"`
	Delivered int `json:"recent_delivered"`
	// SuccessRate is Delivered/Attempts, absent without attempts.
	SuccessRate   *float64  `json:"success_rate,omitempty"`
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastStatus    int       `json:"last_error_status,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	// DeadLetters counts deliveries dead-lettered and not replayed since.
	DeadLetters int `json:"dlq_count"`
}

// Defaults of the options below.
const (
	DefaultCap        = 100
	DefaultQueue      = 16384
	DefaultFlushEvery = 100 * time.Millisecond
	DefaultTTL        = 30 * 24 * time.Hour
	DefaultPrefix     = "herald:"
)

// maxBatch bounds the attempts one pipeline writes.
const maxBatch = 4096

// Store reads and writes attempt history. Add is safe from any goroutine;
// Run must be running for added attempts to reach Redis.
type Store struct {
	rdb        redis.UniversalClient
	cap        int
	ttl        time.Duration
	prefix     string
	flushEvery time.Duration
	log        *zap.Logger

	queue   chan queued
	dropped atomic.Uint64
	errs    atomic.Uint64

	// written is what write remembers of each subscription it wrote; only
	// Run's goroutine uses it.
	written map[string]*written

	mu      sync.Mutex
	flushed *sync.Cond // broadcast after each batch
	pending int        // queued or being written
}

// written is what write remembers of a subscription: when it last set the
// TTL of its keys, and how many attempts it pushed since it last trimmed
// its list.
type written struct {
	ttlSetAt  time.Time
	sinceTrim int
}

type queued struct {
	sub string
	a   Attempt
	// dead marks a dead-letter record: it counts, it is not an attempt.
	dead bool
}

// Option configures a Store.
type Option func(*Store)

// WithCap sets how many attempts are kept per subscription. Default 100.
func WithCap(n int) Option { return func(s *Store) { s.cap = max(1, n) } }

// WithTTL sets how long a subscription's history outlives its last
// attempt. Default 30 days.
func WithTTL(d time.Duration) Option { return func(s *Store) { s.ttl = d } }

// WithPrefix sets the prefix of the Redis keys. Default "herald:".
func WithPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// WithQueue sets how many attempts may wait for Run. Default 16384 (DefaultQueue).
func WithQueue(n int) Option { return func(s *Store) { s.queue = make(chan queued, max(1, n)) } }

// WithFlushEvery sets how long Run gathers attempts before it writes a
// batch that is not full. Default 100ms.
func WithFlushEvery(d time.Duration) Option { return func(s *Store) { s.flushEvery = d } }

// WithLogger sets the logger for Redis failures, logged at most once a
// minute. Default: none.
func WithLogger(l *zap.Logger) Option { return func(s *Store) { s.log = l } }

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts ...Option) *Store {
	s := &Store{
		rdb:        rdb,
		cap:        DefaultCap,
		ttl:        DefaultTTL,
		prefix:     DefaultPrefix,
		flushEvery: DefaultFlushEvery,
		log:        zap.NewNop(),
	}
	for _, o := range opts {
		o(s)
	}
	if s.queue == nil {
		s.queue = make(chan queued, DefaultQueue)
	}
	s.flushed = sync.NewCond(&s.mu)
	return s
}

func (s *Store) attemptsKey(sub string) string { return s.prefix + "attempts:{" + sub + "}" }
func (s *Store) healthKey(sub string) string   { return s.prefix + "health:{" + sub + "}" }

// Kept reports whether r is an attempt worth showing: a request was made or
// tried. Parked, duplicate and alert records are not attempts.
func Kept(r *outcome.Record) bool {
	switch r.State {
	case outcome.Delivered, outcome.Failed, outcome.Aborted:
		return true
	case outcome.Disabled:
		return r.HTTPStatus != 0 // a 410, not a skipped disabled subscription
	}
	return false
}

// Add queues r if it is an attempt or a dead letter. It never blocks: with
// the queue full, r is dropped and counted. Its signature fits
// outcome.WithHook.
func (s *Store) Add(r *outcome.Record) {
	q := queued{sub: r.SubscriptionID}
	switch {
	case r.State == outcome.DeadLettered:
		q.dead = true
	case Kept(r):
		q.a = Attempt{
			DeliveryID: r.DeliveryID, EventID: r.EventID, EventType: r.EventType,
			Attempt: r.Attempt, State: r.State, HTTPStatus: r.HTTPStatus,
			LatencyMS: r.LatencyMS, Error: r.Error, Response: outcome.Excerpt([]byte(r.Response)),
			TraceID: r.TraceID, At: r.AttemptedAt.UTC(),
		}
	default:
		return
	}
	if q.sub == "" {
		return
	}
	s.mu.Lock()
	s.pending++
	s.mu.Unlock()
	select {
	case s.queue <- q:
	default:
		s.dropped.Add(1)
		s.done(1)
	}
}

func (s *Store) done(n int) {
	s.mu.Lock()
	s.pending -= n
	s.mu.Unlock()
	s.flushed.Broadcast()
}

// Dropped returns how many attempts were lost: queue full or Redis failed.
func (s *Store) Dropped() uint64 { return s.dropped.Load() + s.errs.Load() }

// Run writes queued attempts until ctx is done, then writes what is still
// queued (bounded by a few seconds) and returns nil.
func (s *Store) Run(ctx context.Context) error {
	log := sampled(s.log)
	batch := make([]queued, 0, maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func(wctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if err := s.write(wctx, batch); err != nil {
			s.errs.Add(uint64(len(batch)))
			log.Warn("history: writing attempts to Redis failed", zap.Int("attempts", len(batch)), zap.Error(err))
		}
		n := len(batch)
		clear(batch)
		batch = batch[:0]
		s.done(n)
	}
	for {
		select {
		case q := <-s.queue:
			if len(batch) == 0 {
				timer.Reset(s.flushEvery)
			}
			batch = append(batch, q)
			if len(batch) >= maxBatch {
				timer.Stop()
				flush(ctx)
			}
		case <-timer.C:
			flush(ctx)
		case <-ctx.Done():
			timer.Stop()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			defer cancel()
			for {
				select {
				case q := <-s.queue:
					batch = append(batch, q)
					if len(batch) >= maxBatch {
						flush(wctx)
					}
					continue
				default:
				}
				break
			}
			flush(wctx)
			return nil
		}
	}
}

// Wait blocks until every attempt added before the call has been written
// (or dropped), or ctx is done. Tests and the test-send path use it to read
// their own writes.
func (s *Store) Wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.flushed.Broadcast()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.pending > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.flushed.Wait()
	}
	return nil
}

// write stores one batch in a single pipeline. A subscription's attempts
// are one LPUSH; its list is trimmed once it may hold twice the cap, and at
// the first write of a subscription, so that most batches of many endpoints
// are one command per attempt rather than three (readers read the newest cap
// and never see the rest). The hash changes only for errors and dead
// letters; the time of the last attempt is its list's head.
func (s *Store) write(ctx context.Context, batch []queued) error {
	// Per subscription, only what survives the batch is written: its
	// newest cap attempts in one LPUSH, its dead letters in one HINCRBY,
	// and the health fields of its newest attempt and newest error. A
	// batch of a busy endpoint is a few commands, not two per attempt.
	type perSub struct {
		attempts  []*Attempt // in queue order, oldest first
		dead      int64
		lastError *Attempt
	}
	subs := make(map[string]*perSub)
	var order []string
	now := time.Now()
	if s.written == nil {
		s.written = make(map[string]*written)
	}
	for i := range batch {
		q := &batch[i]
		ps := subs[q.sub]
		if ps == nil {
			ps = &perSub{}
			subs[q.sub] = ps
			order = append(order, q.sub)
		}
		if q.dead {
			ps.dead++
			continue
		}
		ps.attempts = append(ps.attempts, &q.a)
		if q.a.State != outcome.Delivered {
			ps.lastError = &q.a
		}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sub := range order {
			ps := subs[sub]
			hk, ak := s.healthKey(sub), s.attemptsKey(sub)
			if ps.dead > 0 {
				p.HIncrBy(ctx, hk, fieldDead, ps.dead)
			}
			w := s.written[sub]
			fresh := w == nil
			if fresh {
				// Its list may be long, left by another instance or by
				// this one before a restart: the first push trims it.
				w = &written{sinceTrim: s.cap}
				s.written[sub] = w
			}
			if n := len(ps.attempts); n > 0 {
				kept := ps.attempts[max(0, n-s.cap):]
				values := make([]any, len(kept))
				for i, a := range kept {
					values[i] = a.appendJSON(nil)
				}
				p.LPush(ctx, ak, values...)
				if w.sinceTrim += len(kept); w.sinceTrim > s.cap {
					p.LTrim(ctx, ak, 0, int64(s.cap-1))
					w.sinceTrim = 0
				}
			}
			if a := ps.lastError; a != nil {
				p.HSet(ctx, hk, fieldLastError, errorText(a), fieldLastStatus, a.HTTPStatus, fieldLastErrorAt, strconv.FormatInt(a.At.UnixMilli(), 10))
			}
			// The TTL only needs to move now and then: it is days long.
			if fresh || now.Sub(w.ttlSetAt) >= ttlRefresh || now.Before(w.ttlSetAt) {
				p.Expire(ctx, ak, s.ttl)
				p.Expire(ctx, hk, s.ttl)
				w.ttlSetAt = now
			}
		}
		return nil
	})
	if err != nil {
		// Whether the TTLs were set and the lists trimmed is unknown: do
		// both next time.
		for _, sub := range order {
			delete(s.written, sub)
		}
	}
	if len(s.written) > maxWritten {
		clear(s.written)
	}
	return err
}

// ttlRefresh is how often a busy subscription's keys get their TTL again;
// maxWritten bounds the subscriptions write remembers.
const (
	ttlRefresh = time.Minute
	maxWritten = 100000
)

// Hash fields of a subscription's health key.
const (
	fieldDead        = "dead_letters"
	fieldLastAttempt = "last_attempt_ms" // no longer written; read from older stores
	fieldLastError   = "last_error"
	fieldLastStatus  = "last_error_status"
	fieldLastErrorAt = "last_error_ms"
)

func errorText(a *Attempt) string {
	if a.Error != "" {
		return a.Error
	}
	if a.HTTPStatus != 0 {
		return "HTTP " + strconv.Itoa(a.HTTPStatus)
	}
	return string(a.State)
}

// Recent returns up to n of the subscription's attempts, newest first.
func (s *Store) Recent(ctx context.Context, sub string, n int) ([]Attempt, error) {
	if n <= 0 || n > s.cap {
		n = s.cap
	}
	raw, err := s.rdb.LRange(ctx, s.attemptsKey(sub), 0, int64(n-1)).Result()
	if err != nil {
		return nil, err
	}
	return decodeAttempts(raw), nil
}

func decodeAttempts(raw []string) []Attempt {
	out := make([]Attempt, 0, len(raw))
	for _, r := range raw {
		var a Attempt
		if json.Unmarshal([]byte(r), &a) == nil {
			out = append(out, a)
		}
	}
	return out
}

// Health returns the health of each subscription named, in one round trip.
// Subscriptions without history get a zero Health.
func (s *Store) Health(ctx context.Context, subs ...string) (map[string]Health, error) {
	lists := make([]*redis.StringSliceCmd, len(subs))
	hashes := make([]*redis.MapStringStringCmd, len(subs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sub := range subs {
			lists[i] = p.LRange(ctx, s.attemptsKey(sub), 0, int64(s.cap-1))
			hashes[i] = p.HGetAll(ctx, s.healthKey(sub))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[string]Health, len(subs))
	for i, sub := range subs {
		var h Health
		m := hashes[i].Val()
		h.LastAttemptAt = millis(m[fieldLastAttempt])
		for j, a := range decodeAttempts(lists[i].Val()) {
			if j == 0 && a.At.After(h.LastAttemptAt) {
				h.LastAttemptAt = a.At.UTC()
			}
			h.Attempts++
			if a.State == outcome.Delivered {
				h.Delivered++
			}
		}
		if h.Attempts > 0 {
			rate := float64(h.Delivered) / float64(h.Attempts)
			h.SuccessRate = &rate
		}
		h.LastError = m[fieldLastError]
		h.LastStatus, _ = strconv.Atoi(m[fieldLastStatus])
		h.LastErrorAt = millis(m[fieldLastErrorAt])
		h.DeadLetters, _ = strconv.Atoi(m[fieldDead])
		h.DeadLetters = max(0, h.DeadLetters)
		out[sub] = h
	}
	return out, nil
}

func millis(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Replayed lowers the dead-letter counts by what a replay re-injected, per
// subscription.
func (s *Store) Replayed(ctx context.Context, counts map[string]int) error {
	if len(counts) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sub, n := range counts {
			p.HIncrBy(ctx, s.healthKey(sub), fieldDead, int64(-n))
		}
		return nil
	})
	return err
}

// Forget deletes a subscription's history.
func (s *Store) Forget(ctx context.Context, sub string) error {
	return s.rdb.Del(ctx, s.attemptsKey(sub), s.healthKey(sub)).Err()
}

// sampled lets through the first entry of each message per minute: a Redis
// outage must not turn every batch into a log line.
func sampled(l *zap.Logger) *zap.Logger {
	return l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Minute, 1, 0)
	}))
}
