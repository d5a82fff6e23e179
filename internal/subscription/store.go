package subscription

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Errors of the Store's write methods.
var (
	ErrNotFound = errors.New("subscription: not found")
	// ErrConflict means another write to the subscription came first: the
	// version given was not the current one, or a concurrent writer won.
	ErrConflict = errors.New("subscription: version conflict")
	// ErrStopped means the Store's Run has returned (or the write waited for
	// a Run that ended before catching up).
	ErrStopped = errors.New("subscription: store is not running")
)

// Record headers the Store writes.
const (
	// HeaderWriteID tags a record with a nonce so its writer recognises it
	// when it reads it back.
	HeaderWriteID = "herald-write-id"
	// HeaderRepair marks a record that restates the applied state after a
	// lost write; see Store.
	HeaderRepair = "herald-repair"
)

// Store holds every subscription in memory, read from the compacted
// subscriptions topic, and writes changes to that topic.
//
// The topic has one partition, so its log is a total order that every
// instance applies with the same rule:
//
//   - a tombstone deletes the id, and the id stays deleted (ids are random
//     and never reused, so any later record for it is stale; remembering
//     them costs one id per delete);
//   - a record for an id this instance does not hold applies whatever its
//     version: after compaction the first record an instance reads for an
//     id is usually not version 1;
//   - a record for an id it holds applies only if its Version is higher
//     than the current one. A writer produces current+1 of the state it has
//     read, which is never ahead of the log, so for an instance that read
//     the whole log this is exactly "Version == current+1": of two writes
//     built on the same version, the first in the log wins and the other is
//     ignored by everyone;
//   - a repair record (HeaderRepair) applies if its Version is at least the
//     current one;
//   - a record that cannot be read (bad JSON, a secret sealed under another
//     master key) is logged and skipped, and the id is no longer held here
//     until a readable record comes.
//
// A writer tags its record with HeaderWriteID, waits until its own
// instance reads the record back, and learns whether it applied. Compaction
// keeps only the last record per key, so a losing record must not stay
// last: an instance starting later would read it alone and apply it. So a
// writer that lost produces the state it now holds for the id — the same
// record bytes, same version, or a tombstone — as a repair, and repeats
// until its repair applies. For every instance that read the whole log the
// repair restates what it already holds and changes nothing. A writer that
// crashes between losing and repairing leaves the losing record last until
// the next write to that subscription.
//
// Returned *Subscription values are immutable snapshots shared by every
// caller: never change them; Update builds a copy.
type Store struct {
	seeds      []string
	topic      string
	cipher     *Cipher
	log        *zap.Logger
	now        func() time.Time
	clientOpts []kgo.Opt

	index *Index

	mu        sync.RWMutex
	subs      map[string]entry
	deleted   map[string]struct{}
	waiters   map[string]chan outcome
	listeners []func(old, new *Subscription)
	cl        *kgo.Client // set while Run runs

	running atomic.Bool
	ready   chan struct{} // closed once caught up
	stopped chan struct{} // closed when Run returns
}

// entry is the applied state of one id: the snapshot and the record value
// it came from, which repairs re-produce byte for byte.
type entry struct {
	sub *Subscription
	raw []byte
}

// outcome is what applying a written record did, told to its writer.
type outcome struct {
	applied bool
	existed bool          // the id was held before the record
	sub     *Subscription // the state after the record; nil if absent
	err     error         // the record could not be read
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithClientOpts adds franz-go options (TLS, SASL, logging, hooks) to the
// Store's client. The Store sets the seeds, the consumed topic, the start
// offset and the producer's default topic itself.
func WithClientOpts(opts ...kgo.Opt) StoreOption {
	return func(s *Store) { s.clientOpts = append(s.clientOpts, opts...) }
}

// WithLogger sets the logger. Default: none.
func WithLogger(l *zap.Logger) StoreOption {
	return func(s *Store) { s.log = l }
}

// WithClock sets the clock used for timestamps and secret expiry. Default:
// time.Now.
func WithClock(now func() time.Time) StoreOption {
	return func(s *Store) { s.now = now }
}

// NewStore returns a Store for the subscriptions topic on the cluster at
// seeds. It makes its own client when Run starts, consuming the topic's
// partitions directly from the start (no consumer group: every instance
// needs every record). Nothing is read or written until Run.
func NewStore(seeds []string, topic string, c *Cipher, opts ...StoreOption) *Store {
	s := &Store{
		seeds:   seeds,
		topic:   topic,
		cipher:  c,
		log:     zap.NewNop(),
		now:     time.Now,
		index:   NewIndex(),
		subs:    make(map[string]entry),
		deleted: make(map[string]struct{}),
		waiters: make(map[string]chan outcome),
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Run reads the whole topic, becomes ready once it has read up to the end
// offsets listed when it started, then follows the topic until ctx is done,
// and returns nil. It returns an error if it cannot start: a bad client
// option, an unreachable cluster, a missing topic. Run may be called once.
func (s *Store) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("subscription: Store.Run called twice")
	}
	defer close(s.stopped)

	opts := append([]kgo.Opt{kgo.SeedBrokers(s.seeds...)}, s.clientOpts...)
	opts = append(opts,
		kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DefaultProduceTopic(s.topic),
		// Admin writes wait for their own read-back; batching buys nothing.
		kgo.ProducerLinger(0),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("subscription: kafka client: %w", err)
	}
	defer cl.Close()

	next, end, err := s.bounds(ctx, cl)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cl = nil
		s.mu.Unlock()
	}()

	start := time.Now()
	caughtUp := func() bool {
		for p, e := range end {
			if next[p] < e {
				return false
			}
		}
		return true
	}
	markReady := func() {
		close(s.ready)
		s.log.Info("subscriptions loaded", zap.String("topic", s.topic),
			zap.Int("subscriptions", s.Len()), zap.Duration("took", time.Since(start)))
	}
	ready := caughtUp()
	if ready {
		markReady()
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		var failed bool
		fetches.EachError(func(t string, p int32, err error) {
			failed = true
			s.log.Warn("reading subscriptions", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		fetches.EachRecord(func(r *kgo.Record) {
			s.apply(r)
			next[r.Partition] = r.Offset + 1
		})
		if !ready && caughtUp() {
			ready = true
			markReady()
		}
		if failed && fetches.NumRecords() == 0 {
			// Do not spin on a persistent error (authorization, deleted topic).
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// boundsWait is how long bounds retries retriable errors: a topic that
// EnsureTopic has just created answers UNKNOWN_TOPIC_OR_PARTITION until its
// partition has a leader, which on a real broker can take a moment.
const boundsWait = 5 * time.Second

// bounds lists where each partition starts and ends now: the Store is
// ready when it has read every partition up to its end.
func (s *Store) bounds(ctx context.Context, cl *kgo.Client) (next, end map[int32]int64, err error) {
	adm := kadm.NewClient(cl)
	var starts, ends kadm.ListedOffsets
	deadline := time.Now().Add(boundsWait)
	for {
		starts, err = adm.ListStartOffsets(ctx, s.topic)
		if err == nil {
			err = starts.Error()
		}
		if err == nil {
			ends, err = adm.ListEndOffsets(ctx, s.topic)
			if err == nil {
				err = ends.Error()
			}
		}
		if err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("subscription: listing offsets of topic %q (does it exist? see EnsureTopic): %w", s.topic, err)
	}
	next, end = make(map[int32]int64), make(map[int32]int64)
	starts.Each(func(o kadm.ListedOffset) { next[o.Partition] = o.Offset })
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	if len(end) == 0 {
		return nil, nil, fmt.Errorf("subscription: topic %q does not exist; create it with EnsureTopic", s.topic)
	}
	return next, end, nil
}

// apply applies one record of the topic by the rule in Store's comment and
// tells its writer, if it waits on this instance, what happened.
func (s *Store) apply(r *kgo.Record) {
	id := string(r.Key)
	var writeID string
	var repair bool
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderWriteID:
			writeID = string(h.Value)
		case HeaderRepair:
			repair = true
		}
	}

	var sub *Subscription
	var err error
	if r.Value != nil {
		sub, err = decodeRecord(r.Value, s.cipher)
		switch {
		case err != nil:
		case sub.ID != id:
			err = fmt.Errorf("record id %q differs from its key", sub.ID)
		case sub.Version < 1:
			err = fmt.Errorf("record has version %d", sub.Version)
		}
		if err != nil {
			s.logSkipped(id, r.Offset, err)
			sub = nil
		}
	}

	s.mu.Lock()
	cur, held := s.subs[id]
	o := outcome{existed: held, sub: cur.sub, err: err}
	changed := false
	switch _, deleted := s.deleted[id]; {
	case err != nil:
		// Skipped means not served by this instance: keeping an older
		// version would deliver with stale settings and secrets, and a
		// writer here would build on it.
		if held {
			delete(s.subs, id)
			s.index.Remove(id)
			o.sub, changed = nil, true
		}
	case r.Value == nil:
		delete(s.subs, id)
		s.deleted[id] = struct{}{}
		s.index.Remove(id)
		o.applied, o.sub, changed = true, nil, held
	case deleted:
	case !held || sub.Version > cur.sub.Version || repair && sub.Version == cur.sub.Version:
		o.applied, o.sub = true, cur.sub
		if !held || !bytes.Equal(cur.raw, r.Value) {
			s.subs[id] = entry{sub: sub, raw: bytes.Clone(r.Value)}
			s.index.Add(sub)
			o.sub, changed = sub, true
		}
	}
	if ch, ok := s.waiters[writeID]; ok && writeID != "" {
		ch <- o
		delete(s.waiters, writeID)
	}
	listeners := s.listeners
	s.mu.Unlock()

	if changed {
		for _, fn := range listeners {
			fn(cur.sub, o.sub)
		}
	}
}

func (s *Store) logSkipped(id string, offset int64, err error) {
	if errors.Is(err, ErrWrongKey) {
		s.log.Error("cannot decrypt subscription secrets: HERALD_MASTER_KEY differs from the key that sealed them; subscription skipped",
			zap.String("subscription", id), zap.Int64("offset", offset), zap.Error(err))
		return
	}
	s.log.Error("skipping unreadable subscription record",
		zap.String("subscription", id), zap.Int64("offset", offset), zap.Error(err))
}

// Ready reports whether the Store has read the topic up to where it ended
// when Run started.
func (s *Store) Ready() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// WaitReady blocks until the Store is ready, ctx is done, or Run returns
// before catching up (ErrStopped).
func (s *Store) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return ErrStopped
	}
}

// Get returns the subscription with this id.
func (s *Store) Get(id string) (*Subscription, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.subs[id]
	return e.sub, ok
}

// List returns every subscription, sorted by ID.
func (s *Store) List() []*Subscription {
	s.mu.RLock()
	ids := slices.Sorted(maps.Keys(s.subs))
	out := make([]*Subscription, len(ids))
	for i, id := range ids {
		out[i] = s.subs[id].sub
	}
	s.mu.RUnlock()
	return out
}

// Match returns the subscriptions, of any status, that an event of this
// type on this topic matches. See Index.Match.
func (s *Store) Match(topic, eventType string) []*Subscription {
	return s.index.Match(topic, eventType)
}

// Len returns the number of subscriptions held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.subs)
}

// Subscribe registers fn to be told of every change as it is applied,
// including those read while loading: old is nil for a new subscription,
// new is nil for a deleted one. fn runs on the goroutine that reads the
// topic, in log order, and must return quickly.
func (s *Store) Subscribe(fn func(old, new *Subscription)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(slices.Clip(s.listeners), fn)
}
