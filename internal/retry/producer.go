package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
)

// DefaultPrefix is the prefix of herald's own topics.
const DefaultPrefix = "herald."

// Producer hands unfinished jobs to Kafka: the tier topic of their next
// attempt, or herald.dlq. Every method returns after the broker acked, so
// the caller may finish the source offset. It implements dispatch.Retrier.
type Producer struct {
	cl     *kgo.Client
	sched  *Schedule
	prefix string
	now    func() time.Time
	rnd    func() float64
}

var _ dispatch.Retrier = (*Producer)(nil)

// ProducerOption configures a Producer.
type ProducerOption func(*Producer)

// WithPrefix sets the prefix of the tier and dead-letter topics. Default
// "herald.".
func WithPrefix(prefix string) ProducerOption { return func(p *Producer) { p.prefix = prefix } }

// WithClock sets where due times start from. Default time.Now.
func WithClock(now func() time.Time) ProducerOption { return func(p *Producer) { p.now = now } }

// WithJitter sets the source of due-time jitter, values in [0, 1). Default
// math/rand/v2.Float64; nil turns jitter off.
func WithJitter(rnd func() float64) ProducerOption { return func(p *Producer) { p.rnd = rnd } }

// NewProducer returns a Producer writing through cl, which should be a
// producing client with the defaults (acks=all, idempotent).
func NewProducer(cl *kgo.Client, s *Schedule, opts ...ProducerOption) *Producer {
	p := &Producer{cl: cl, sched: s, prefix: DefaultPrefix, now: time.Now, rnd: rand.Float64}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Schedule is the producer's schedule.
func (p *Producer) Schedule() *Schedule { return p.sched }

// Topic is the topic of a tier.
func (p *Producer) Topic(tier time.Duration) string { return TopicName(p.prefix, tier) }

// DLQTopic is the dead-letter topic.
func (p *Producer) DLQTopic() string { return DLQTopic(p.prefix) }

// Retry produces j to the tier of its next attempt. A parked job keeps its
// attempt number and goes to the smallest tier covering r.After; otherwise
// the attempt is spent and the tier is the later of the schedule's and the
// one covering r.After (Retry-After).
func (p *Producer) Retry(ctx context.Context, j *dispatch.Job, r dispatch.Retry) error {
	h, err := p.headers(ctx, j)
	if err != nil {
		return err
	}
	var tier time.Duration
	tier, h.Attempt = plan(p.sched, j.Attempt, r)
	if !r.Park && h.FirstAttemptAt.IsZero() {
		h.FirstAttemptAt = firstNonZero(r.AttemptedAt, p.now())
	}
	h.DueAt = Due(p.now(), tier, p.rnd)
	h.LastStatus, h.LastError = r.LastStatus, r.LastError
	return p.Produce(ctx, &kgo.Record{
		Topic:   p.Topic(tier),
		Key:     []byte(h.SubscriptionID),
		Value:   j.Event.Value,
		Headers: h.Encode(),
	})
}

// plan picks the tier and the attempt number of the record that reschedules
// failed (or parked) attempt n.
func plan(s *Schedule, n int, r dispatch.Retry) (tier time.Duration, attempt int) {
	if r.Park {
		return s.TierFor(max(r.After, s.First())), n
	}
	return max(s.Next(n), s.TierFor(r.After)), n + 1
}

// DeadLetter produces j to herald.dlq with why it gave up.
func (p *Producer) DeadLetter(ctx context.Context, j *dispatch.Job, why dispatch.DeadLetter) error {
	h, err := p.headers(ctx, j)
	if err != nil {
		return err
	}
	last := firstNonZero(why.AttemptedAt, p.now())
	h.Attempt = j.Attempt
	h.Attempts = j.Attempt
	h.DLQReason = why.Reason
	if h.DLQReason == "" {
		h.DLQReason = "unknown"
	}
	h.LastStatus, h.LastError = why.LastStatus, why.LastError
	h.LastAttemptAt = last
	if h.FirstAttemptAt.IsZero() {
		h.FirstAttemptAt = last
	}
	return p.Produce(ctx, &kgo.Record{
		Topic:   p.DLQTopic(),
		Key:     []byte(h.SubscriptionID),
		Value:   j.Event.Value,
		Headers: h.Encode(),
	})
}

// DeadLetterRecord forwards a retry record that cannot be read as a job to
// herald.dlq as it is, with reason and its own position added, so that it is
// neither dropped nor looped.
func (p *Producer) DeadLetterRecord(ctx context.Context, r *kgo.Record, reason string) error {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+3)
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderDLQReason, HeaderRetrySource, HeaderLastAttemptAt:
			continue
		}
		hs = append(hs, h)
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(truncateUTF8(reason, MaxLastError))},
		kgo.RecordHeader{Key: HeaderRetrySource, Value: []byte(event.Position(r.Topic, r.Partition, r.Offset))},
		kgo.RecordHeader{Key: HeaderLastAttemptAt, Value: []byte(millis(p.now()))},
	)
	return p.Produce(ctx, &kgo.Record{Topic: p.DLQTopic(), Key: r.Key, Value: r.Value, Headers: hs})
}

// Requeue returns the record that puts a delivery into the first tier as h
// describes it (attempt, due time, replay mark): the way dead letters are
// replayed and subscriptions backfilled.
func (p *Producer) Requeue(h *Headers, value []byte) *kgo.Record {
	return &kgo.Record{
		Topic:   p.Topic(p.sched.First()),
		Key:     []byte(h.SubscriptionID),
		Value:   value,
		Headers: h.Encode(),
	}
}

// Produce sends recs and waits until the broker acked all of them.
func (p *Producer) Produce(ctx context.Context, recs ...*kgo.Record) error {
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		topic := ""
		if len(recs) > 0 {
			topic = recs[0].Topic
		}
		return fmt.Errorf("retry: produce to %s: %w", topic, err)
	}
	return nil
}

func (p *Producer) headers(ctx context.Context, j *dispatch.Job) (Headers, error) {
	if j.Event == nil || j.Subscription == nil {
		return Headers{}, errors.New("retry: job without event or subscription")
	}
	ev := j.Event
	origin := j.OriginTraceParent
	if origin == "" && j.Tier == "" && !j.Replay {
		// First hop: the source record's context is the producer's.
		origin = ev.TraceParent
	}
	return Headers{
		DeliveryID:        j.DeliveryID,
		EventID:           ev.ID,
		EventType:         ev.Type,
		EventTime:         ev.Time,
		EventKey:          ev.Key,
		ContentType:       ev.ContentType,
		SubscriptionID:    j.Subscription.ID,
		FirstAttemptAt:    j.FirstAttemptAt,
		Source:            ev.Source(),
		TraceParent:       hopTraceParent(ctx, ev.TraceParent),
		OriginTraceParent: origin,
		Replay:            j.Replay,
		Original:          OriginalHeaders(ev.Headers),
	}, nil
}

// hopTraceParent is the W3C context of the span in ctx (the attempt that
// failed), so the next attempt links to it; without one, the previous hop's.
func hopTraceParent(ctx context.Context, fallback string) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return fallback
	}
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if tp := c.Get(HeaderTraceParent); tp != "" {
		return tp
	}
	// The global propagator may not include W3C trace context.
	propagation.TraceContext{}.Inject(ctx, c)
	if tp := c.Get(HeaderTraceParent); tp != "" {
		return tp
	}
	return fallback
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
