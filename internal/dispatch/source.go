package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
)

// Matcher finds the subscriptions an event goes to.
type Matcher interface {
	Match(topic, eventType string) []*subscription.Subscription
}

// RejectFunc reports an event that cannot be delivered to the subscriptions
// it matched (oversized, malformed); its offset still moves on.
type RejectFunc func(ctx context.Context, ev *event.Event, subs []*subscription.Subscription, why error)

// Source consumes the source topics in a consumer group and submits one job
// per matching subscription. A record's offset is committed once all of its
// jobs are finished.
type Source struct {
	cl        *kgo.Client
	disp      *Dispatcher
	match     Matcher
	extract   func(*kgo.Record) (event.Event, error)
	reject    RejectFunc
	log       *zap.Logger
	drainWait time.Duration

	offsets *Offsets

	mu    sync.Mutex
	parts map[topicPartition]*assignment
}

// assignment is one partition this instance owns.
type assignment struct {
	abandon     chan struct{}
	draining    bool // set under Source.mu; no new work is added after it
	outstanding sync.WaitGroup
}

// SourceConfig configures a Source.
type SourceConfig struct {
	// Extract builds events from records; the extractor of each topic.
	Extract func(*kgo.Record) (event.Event, error)
	// Reject reports rejected events; optional.
	Reject RejectFunc
	// DrainWait bounds how long a revoke or shutdown waits for running
	// deliveries before committing what is finished. Default 30s.
	DrainWait time.Duration
	Logger    *zap.Logger
}

// SourceOpts are the kgo options a Source needs on its client: the caller
// adds seeds, TLS and the like, plus ConsumerGroup and ConsumeTopics.
func (s *Source) clientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	}
}

// NewSource builds a Source and its consumer-group client from the given
// options (seeds, group, topics, security), adding its own.
func NewSource(disp *Dispatcher, match Matcher, cfg SourceConfig, opts ...kgo.Opt) (*Source, error) {
	s := &Source{
		disp:      disp,
		match:     match,
		extract:   cfg.Extract,
		reject:    cfg.Reject,
		log:       cfg.Logger,
		drainWait: cfg.DrainWait,
		offsets:   NewOffsets(),
		parts:     make(map[topicPartition]*assignment),
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.drainWait <= 0 {
		s.drainWait = 30 * time.Second
	}
	if s.extract == nil {
		var x event.Extractor
		s.extract = x.FromRecord
	}
	cl, err := kgo.NewClient(append(opts, s.clientOpts()...)...)
	if err != nil {
		return nil, err
	}
	s.cl = cl
	return s, nil
}

// Client is the Source's consumer-group client.
func (s *Source) Client() *kgo.Client { return s.cl }

// Run polls until ctx ends, then drains: queued jobs that have not started are
// abandoned for the next owner, running ones finish, finished offsets are
// committed, and the client leaves the group.
func (s *Source) Run(ctx context.Context) error {
	commitDone := make(chan struct{})
	commitCtx, stopCommits := context.WithCancel(context.Background())
	go func() {
		defer close(commitDone)
		s.commitLoop(commitCtx)
	}()

	for {
		fetches := s.cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			var tooLarge *kgo.ErrDecompressTooLarge
			if errors.As(err, &tooLarge) {
				s.skipBatch(ctx, tooLarge)
				return
			}
			s.log.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
		})
		var submitErr error
		fetches.EachRecord(func(r *kgo.Record) {
			if submitErr == nil {
				submitErr = s.handle(ctx, r)
			}
		})
		if submitErr != nil {
			break
		}
	}

	s.drainAll()
	stopCommits()
	<-commitDone
	s.commit(context.Background())
	s.cl.Close()
	return nil
}

// skipBatch rejects a compressed batch that would decompress beyond the
// client's limit (a compression bomb): its records are never held in
// memory, the subscriptions of the topic get a rejected outcome, and the
// partition moves past it.
func (s *Source) skipBatch(ctx context.Context, b *kgo.ErrDecompressTooLarge) {
	s.log.Error("skipping a compressed batch that decompresses beyond the limit",
		zap.String("topic", b.Topic), zap.Int32("partition", b.Partition),
		zap.Int64("first_offset", b.Offset), zap.Int64("next_offset", b.NextOffset))
	ev := &event.Event{
		ID: event.Position(b.Topic, b.Partition, b.Offset), Type: b.Topic,
		Topic: b.Topic, Partition: b.Partition, Offset: b.Offset, Time: time.Now(),
	}
	if subs := s.match.Match(b.Topic, b.Topic); s.reject != nil && len(subs) > 0 {
		s.reject(ctx, ev, subs, &event.Rejection{Reason: fmt.Sprintf(
			"compressed batch at offsets %d–%d decompresses beyond the limit", b.Offset, b.NextOffset-1)})
	}
	last := &kgo.Record{Topic: b.Topic, Partition: b.Partition, Offset: b.NextOffset - 1, LeaderEpoch: b.Epoch}
	s.offsets.Track(last)
	s.offsets.Finish(last.Topic, last.Partition, last.Offset)
	s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{b.Topic: {b.Partition: {Epoch: b.Epoch, Offset: b.NextOffset}}})
}

func (s *Source) handle(ctx context.Context, r *kgo.Record) error {
	tp := topicPartition{r.Topic, r.Partition}
	s.mu.Lock()
	a := s.parts[tp]
	if a == nil || a.draining {
		// A record of a partition already revoked: its next owner reads it.
		s.mu.Unlock()
		return nil
	}
	a.outstanding.Add(1)
	s.mu.Unlock()
	defer a.outstanding.Done()

	s.offsets.Track(r)
	ev, err := s.extract(r)
	evp := &ev
	subs := s.match.Match(ev.Topic, ev.Type)
	var targets []*subscription.Subscription
	for _, sub := range subs {
		if sub.Status != subscription.StatusDisabled {
			targets = append(targets, sub)
		}
	}
	if err != nil {
		if s.reject != nil && len(targets) > 0 {
			s.reject(ctx, evp, targets, err)
		}
		s.offsets.Finish(r.Topic, r.Partition, r.Offset)
		return nil
	}
	if len(targets) == 0 {
		s.offsets.Finish(r.Topic, r.Partition, r.Offset)
		return nil
	}

	if len(targets) > 1 {
		// What its deliveries share is built once for all of them.
		ev.Shared = new(event.Shared)
	}
	rec := &recordJobs{s: s, r: r}
	rec.remaining.Store(int32(len(targets)))
	for _, sub := range targets {
		a.outstanding.Add(1)
		j := &Job{
			Event:             evp,
			Subscription:      sub,
			DeliveryID:        event.DeliveryID(ev.ID, sub.ID),
			Attempt:           1,
			OriginTraceParent: ev.TraceParent,
			Abandon:           a.abandon,
			Done: func(res Result) {
				rec.done(res)
				a.outstanding.Done()
			},
		}
		if err := s.disp.Submit(ctx, j); err != nil {
			a.outstanding.Done()
			return err
		}
	}
	return nil
}

// recordJobs counts the unfinished jobs of one record.
type recordJobs struct {
	s         *Source
	r         *kgo.Record
	remaining atomic.Int32
	abandoned atomic.Bool
}

func (rj *recordJobs) done(res Result) {
	if res.Step == Abandoned {
		rj.abandoned.Store(true)
	}
	if rj.remaining.Add(-1) == 0 && !rj.abandoned.Load() {
		rj.s.offsets.Finish(rj.r.Topic, rj.r.Partition, rj.r.Offset)
	}
}

func (s *Source) commitLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.commit(ctx)
		}
	}
}

func (s *Source) commit(ctx context.Context) {
	offs := s.offsets.Committable()
	if len(offs) == 0 {
		return
	}
	if ctx.Err() != nil {
		ctx = context.Background()
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var failed bool
	s.cl.CommitOffsetsSync(cctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			failed = true
			s.log.Warn("offset commit failed; will retry", zap.Error(err))
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					failed = true
				}
			}
		}
	})
	if failed {
		s.offsets.MarkDirty(offs)
	}
}

func (s *Source) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range assigned {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			if s.parts[tp] == nil {
				s.parts[tp] = &assignment{abandon: make(chan struct{})}
				s.offsets.Forget(topic, p)
			}
		}
	}
	s.log.Info("partitions assigned", zap.Any("partitions", assigned))
}

// revoked drains the revoked partitions: jobs not started are abandoned (the
// next owner delivers them), running ones finish, then what is finished is
// committed before the partitions move.
func (s *Source) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.log.Info("partitions revoked; draining", zap.Any("partitions", revoked))
	s.drain(revoked)
	s.commit(ctx)
	s.forget(revoked)
}

func (s *Source) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.log.Warn("partitions lost; their uncommitted records go to the next owner", zap.Any("partitions", lost))
	s.drain(lost)
	s.forget(lost)
}

func (s *Source) drainAll() {
	s.mu.Lock()
	all := make(map[string][]int32)
	for tp := range s.parts {
		all[tp.topic] = append(all[tp.topic], tp.partition)
	}
	s.mu.Unlock()
	s.drain(all)
}

func (s *Source) drain(parts map[string][]int32) {
	var waits []*assignment
	s.mu.Lock()
	for topic, ps := range parts {
		for _, p := range ps {
			if a := s.parts[topicPartition{topic, p}]; a != nil {
				if !a.draining {
					a.draining = true
					close(a.abandon)
				}
				waits = append(waits, a)
			}
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, a := range waits {
			a.outstanding.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.drainWait):
		s.log.Warn("drain timed out; unfinished deliveries will be redelivered by the next owner", zap.Duration("waited", s.drainWait))
	}
}

func (s *Source) forget(parts map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(s.parts, topicPartition{topic, p})
			s.offsets.Forget(topic, p)
		}
	}
}
