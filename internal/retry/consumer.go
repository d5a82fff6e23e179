package retry

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

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// DefaultGroup is the consumer group of the tier consumers.
const DefaultGroup = "herald-retry"

// The small interfaces the tier consumer uses, each satisfied by the
// package named in its comment.
type (
	// Submitter queues a job on its endpoint and calls its Done once it is
	// finished: *dispatch.Dispatcher.
	Submitter interface {
		Submit(ctx context.Context, j *dispatch.Job) error
	}
	// Subscriptions looks subscriptions up: *subscription.Store.
	Subscriptions interface {
		Get(id string) (*subscription.Subscription, bool)
	}
	// Outcomes records what happened to the retry records the consumer
	// finishes without the dispatcher: *outcome.Writer.
	Outcomes interface {
		Write(ctx context.Context, r *outcome.Record)
	}
)

// ConsumerConfig configures a Consumer. Submitter, Subscriptions and
// Producer are required.
type ConsumerConfig struct {
	// ClientOpts connect to the cluster: seed brokers, TLS, SASL, logger,
	// hooks. The consumer adds its group, topics and commit options after
	// them.
	ClientOpts []kgo.Opt
	// Group is the consumer group. Default "herald-retry".
	Group string
	// Prefix is the prefix of herald's topics. Default "herald.".
	Prefix string
	// Schedule says which tier topics to consume. Default DefaultTiers.
	Schedule *Schedule

	Submitter     Submitter
	Subscriptions Subscriptions
	// Producer dead-letters records that cannot be read as a job.
	Producer *Producer
	// Outcomes records deliveries dropped because their subscription was
	// deleted, and corrupt records sent to herald.dlq. Optional.
	Outcomes Outcomes
	Logger   *zap.Logger

	// CommitInterval is how often finished offsets are committed. Default 1s.
	CommitInterval time.Duration
	// DrainTimeout bounds how long a revoke or shutdown waits for jobs
	// already submitted before committing what finished. Default 30s.
	DrainTimeout time.Duration
	// MaxQueued is how many polled records a partition holds before its
	// fetching pauses even though its head is due. Default 1,000.
	MaxQueued int
	// Now is the clock due times are compared with. Default time.Now.
	Now func() time.Time
}

func (c *ConsumerConfig) setDefaults() {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = 1000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate reports a missing dependency.
func (c *ConsumerConfig) Validate() error {
	switch {
	case c.Submitter == nil:
		return errors.New("retry: consumer needs a Submitter")
	case c.Subscriptions == nil:
		return errors.New("retry: consumer needs Subscriptions")
	case c.Producer == nil:
		return errors.New("retry: consumer needs a Producer for dead letters")
	}
	return nil
}

// Consumer reads every tier topic in one consumer group and submits each
// record to the dispatcher when it is due, never before. A partition whose
// head record is not due is paused, and a timer wakes it at the due time;
// records already polled wait in its queue. Offsets are committed when the
// jobs they carry are finished.
type Consumer struct {
	cfg     ConsumerConfig
	cl      *kgo.Client
	offsets *dispatch.Offsets
	log     *zap.Logger
	stats   map[string]*tierCounters // by topic; fixed after construction

	mu    sync.Mutex
	parts map[topicPartition]*partition

	commitMu sync.Mutex
}

type topicPartition struct {
	topic     string
	partition int32
}

// NewConsumer checks cfg and returns a consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Schedule == nil {
		cfg.Schedule, _ = NewSchedule()
	}
	c := &Consumer{
		cfg:     cfg,
		offsets: dispatch.NewOffsets(),
		log:     cfg.Logger.Named("retry"),
		stats:   make(map[string]*tierCounters),
		parts:   make(map[topicPartition]*partition),
	}
	for _, t := range cfg.Schedule.tiers {
		c.stats[TopicName(cfg.Prefix, t)] = &tierCounters{tier: t}
	}
	return c, nil
}

func (c *Consumer) newClient() (*kgo.Client, error) {
	topics := make([]string, 0, len(c.stats))
	for topic := range c.stats {
		topics = append(topics, topic)
	}
	opts := []kgo.Opt{
		// A resumed partition joins the next fetch only after the one in
		// flight returns; a short wait keeps short tiers close to due.
		kgo.FetchMaxWait(time.Second),
	}
	opts = append(opts, c.cfg.ClientOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("retry: consumer client: %w", err)
	}
	return cl, nil
}

// Run joins the group and polls until ctx is done, then stops submitting,
// waits up to DrainTimeout for submitted jobs, commits what finished and
// leaves the group. It runs once; it fails only when the client cannot be
// built.
func (c *Consumer) Run(ctx context.Context) error {
	cl, err := c.newClient()
	if err != nil {
		return err
	}
	c.cl = cl
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		c.commitLoop(ctx)
	}()

	for {
		fs := c.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			c.log.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			for _, r := range ftp.Records {
				c.offsets.Track(r)
			}
			c.partition(ctx, ftp.Topic, ftp.Partition).push(ftp.Records)
		})
		c.cl.AllowRebalance()
	}

	<-commitsDone
	c.mu.Lock()
	all := make(map[string][]int32)
	for tp := range c.parts {
		all[tp.topic] = append(all[tp.topic], tp.partition)
	}
	c.mu.Unlock()
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.DrainTimeout+10*time.Second)
	defer cancel()
	c.release(final, c.cl, all, true)
	c.cl.Close()
	return nil
}

func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.commit(ctx, c.cl)
		}
	}
}

// commit commits every finished offset that moved, synchronously, so that
// a revoke that follows it sees it done.
func (c *Consumer) commit(ctx context.Context, cl *kgo.Client) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	offs := c.offsets.Committable()
	if len(offs) == 0 {
		return
	}
	cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			c.offsets.MarkDirty(offs)
			c.log.Warn("commit failed; retrying on the next tick", zap.Error(err))
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == 0 {
					continue
				}
				c.offsets.MarkDirty(map[string]map[int32]kgo.EpochOffset{t.Topic: {p.Partition: {}}})
				c.log.Warn("commit of a partition failed", zap.String("topic", t.Topic), zap.Int32("partition", p.Partition),
					zap.Int16("error_code", p.ErrorCode))
			}
		}
	})
}

// onRevoked hands revoked partitions back in order: stop submitting, wait
// for the jobs in flight, commit, forget. Unsubmitted records are left to
// the next owner.
func (c *Consumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.release(ctx, cl, revoked, true)
}

// onLost forgets partitions that already belong to someone else: nothing
// of theirs may be committed any more.
func (c *Consumer) onLost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	c.release(ctx, cl, lost, false)
}

func (c *Consumer) release(ctx context.Context, cl *kgo.Client, tps map[string][]int32, commit bool) {
	var parts []*partition
	c.mu.Lock()
	for topic, ps := range tps {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if part := c.parts[tp]; part != nil {
				parts = append(parts, part)
				delete(c.parts, tp)
			}
		}
	}
	c.mu.Unlock()

	for _, p := range parts {
		p.stop()
	}
	if commit {
		deadline := time.NewTimer(c.cfg.DrainTimeout)
		for _, p := range parts {
			if !p.drain(deadline.C) {
				c.log.Warn("jobs still in flight after the drain timeout; their records go to the next owner",
					zap.String("topic", p.topic), zap.Int32("partition", p.partition))
				break
			}
		}
		deadline.Stop()
		c.commit(ctx, cl)
	}
	for _, p := range parts {
		p.forget()
	}
}

func (c *Consumer) partition(ctx context.Context, topic string, part int32) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	tp := topicPartition{topic, part}
	if p := c.parts[tp]; p != nil {
		return p
	}
	p := newPartition(ctx, c, topic, part)
	c.parts[tp] = p
	go p.run()
	return p
}

// TierStats are the counters of one tier, for metrics.
type TierStats struct {
	Tier  time.Duration
	Topic string
	// Queued records were polled and wait for their due time.
	Queued int64
	// InFlight records were submitted and are not finished.
	InFlight int64
	// PausedPartitions are waiting for their head record.
	PausedPartitions int64
	// Submitted counts records handed to the dispatcher.
	Submitted uint64
	// Early counts records submitted before their due time. It stays 0; a
	// metric on it guards the promise.
	Early uint64
	// DeadLettered counts corrupt records sent to herald.dlq.
	DeadLettered uint64
	// SubscriptionDeleted counts records dropped because their
	// subscription no longer exists.
	SubscriptionDeleted uint64
}

type tierCounters struct {
	tier                time.Duration
	queued, inFlight    atomic.Int64
	paused              atomic.Int64
	submitted, early    atomic.Uint64
	deadLettered        atomic.Uint64
	subscriptionDeleted atomic.Uint64
}

// Stats returns the counters of every tier, shortest first.
func (c *Consumer) Stats() []TierStats {
	out := make([]TierStats, 0, len(c.stats))
	for _, t := range c.cfg.Schedule.tiers {
		topic := TopicName(c.cfg.Prefix, t)
		s := c.stats[topic]
		out = append(out, TierStats{
			Tier:                t,
			Topic:               topic,
			Queued:              s.queued.Load(),
			InFlight:            s.inFlight.Load(),
			PausedPartitions:    s.paused.Load(),
			Submitted:           s.submitted.Load(),
			Early:               s.early.Load(),
			DeadLettered:        s.deadLettered.Load(),
			SubscriptionDeleted: s.subscriptionDeleted.Load(),
		})
	}
	return out
}

// record writes an outcome for a record the consumer finished itself.
func (c *Consumer) record(ctx context.Context, j *dispatch.Job, r *outcome.Record) {
	if c.cfg.Outcomes == nil {
		return
	}
	ev := j.Event
	r.DeliveryID = j.DeliveryID
	r.EventID = ev.ID
	r.EventType = ev.Type
	r.SubscriptionID = j.Subscription.ID
	r.Topic = ev.Topic
	r.Partition = ev.Partition
	r.Offset = ev.Offset
	r.Attempt = j.Attempt
	r.Tier = j.Tier
	c.cfg.Outcomes.Write(ctx, r)
}
