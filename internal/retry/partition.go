package retry

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// partition holds the polled records of one tier partition in offset order
// and submits its head when due. One goroutine (run) works the queue; the
// poll loop appends to it; a timer wakes it at the head's due time.
type partition struct {
	c         *Consumer
	topic     string
	partition int32
	tier      string
	stats     *tierCounters

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	inflight sync.WaitGroup
	// gone is set once the partition was handed back: a job finishing
	// after that must not touch the offsets of a later assignment.
	gone atomic.Bool

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
	timer  *time.Timer
}

// dueSlack is how much later than its tier's delay plus jitter a record may
// be due, for the clock of the instance that wrote it.
const dueSlack = time.Minute

// retryBackoff spaces attempts at hand-offs that failed for a reason other
// than shutdown (a dead-letter produce, a Submit error).
const retryBackoff = time.Second

func newPartition(ctx context.Context, c *Consumer, topic string, part int32) *partition {
	p := &partition{
		c:         c,
		topic:     topic,
		partition: part,
		stats:     c.stats[topic],
		done:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
	}
	if p.stats == nil {
		p.stats = &tierCounters{}
	} else {
		p.tier = FormatTier(p.stats.tier)
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	return p
}

// push queues records polled for this partition, in order. A partition
// whose queue is full stops fetching until the queue drains.
func (p *partition) push(recs []*kgo.Record) {
	p.mu.Lock()
	p.queue = append(p.queue, recs...)
	if len(p.queue) >= p.c.cfg.MaxQueued {
		p.setPausedLocked(true)
	}
	p.mu.Unlock()
	p.stats.queued.Add(int64(len(recs)))
	p.signal()
}

func (p *partition) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *partition) wait() bool {
	select {
	case <-p.wake:
		return true
	case <-p.ctx.Done():
		return false
	}
}

func (p *partition) run() {
	defer close(p.done)
	for p.ctx.Err() == nil {
		r := p.peek()
		if r == nil {
			if !p.wait() {
				return
			}
			continue
		}
		h, err := ParseHeaders(r.Headers)
		if err == nil {
			err = h.CheckRetry()
		}
		// A due time later than this tier ever sets (a hand-written record,
		// a clock years off) would pause the partition, and every record
		// behind it, until then.
		if tier := p.stats.tier; err == nil && tier > 0 && !r.Timestamp.IsZero() {
			if limit := r.Timestamp.Add(tier + tier/10 + dueSlack); h.DueAt.After(limit) {
				err = &CorruptError{HeaderDueAt, fmt.Sprintf("is %s after the record was written, beyond what tier %s sets",
					h.DueAt.Sub(r.Timestamp).Round(time.Second), p.tier)}
			}
		}
		if err != nil {
			if !p.deadLetter(r, &h, "corrupt_record: "+err.Error()) {
				return
			}
			continue
		}
		if now := p.c.cfg.Now(); now.Before(h.DueAt) {
			p.sleepUntil(h.DueAt.Sub(now))
			if !p.wait() {
				return
			}
			continue
		}
		if !p.submit(r, &h) {
			return
		}
	}
}

// sleepUntil pauses fetching and arms the timer that resumes it when the
// head is due. The poll loop goes on serving every other partition.
func (p *partition) sleepUntil(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setPausedLocked(true)
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timer = time.AfterFunc(d, p.due)
}

// due runs on the timer: fetching resumes (unless the queue is full) and
// the worker looks at its head again.
func (p *partition) due() {
	p.mu.Lock()
	if p.ctx.Err() == nil && len(p.queue) < p.c.cfg.MaxQueued {
		p.setPausedLocked(false)
	}
	p.mu.Unlock()
	p.signal()
}

func (p *partition) setPausedLocked(paused bool) {
	if paused == p.paused {
		return
	}
	tp := map[string][]int32{p.topic: {p.partition}}
	if paused {
		p.c.cl.PauseFetchPartitions(tp)
		p.stats.paused.Add(1)
	} else {
		p.c.cl.ResumeFetchPartitions(tp)
		p.stats.paused.Add(-1)
	}
	p.paused = paused
}

func (p *partition) peek() *kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	return p.queue[0]
}

// pop removes the head; fetching resumes once the queue has room and the
// next head (if any) is checked by the worker.
func (p *partition) pop() {
	p.mu.Lock()
	p.queue[0] = nil
	p.queue = p.queue[1:]
	if len(p.queue) < p.c.cfg.MaxQueued {
		p.setPausedLocked(false)
	}
	p.mu.Unlock()
	p.stats.queued.Add(-1)
}

// submit hands the head to the dispatcher, or drops it with an outcome when
// its subscription is gone. It reports false when the worker must stop.
func (p *partition) submit(r *kgo.Record, h *Headers) bool {
	sub, ok := p.c.cfg.Subscriptions.Get(h.SubscriptionID)
	j := p.job(r, h, sub)
	if !ok {
		j.Subscription = &subscription.Subscription{ID: h.SubscriptionID}
		p.c.record(p.ctx, j, &outcome.Record{
			State:       outcome.SubscriptionDeleted,
			Error:       "subscription deleted while the delivery waited in retry tier " + p.tier,
			AttemptedAt: p.c.cfg.Now(),
		})
		p.stats.subscriptionDeleted.Add(1)
		p.finish(r)
		p.pop()
		return true
	}

	if p.c.cfg.Now().Before(h.DueAt) {
		p.stats.early.Add(1)
	}
	p.inflight.Add(1)
	p.stats.inFlight.Add(1)
	var once sync.Once
	release := func(finished bool) {
		once.Do(func() {
			if finished && !p.gone.Load() {
				p.finish(r)
			}
			p.stats.inFlight.Add(-1)
			p.inflight.Done()
		})
	}
	j.Done = func(res dispatch.Result) { release(res.Step != dispatch.Abandoned) }
	for {
		err := p.c.cfg.Submitter.Submit(p.ctx, j)
		if err == nil {
			break
		}
		if p.ctx.Err() != nil {
			release(false)
			return false
		}
		p.c.log.Warn("submit failed; trying again", zap.String("delivery_id", h.DeliveryID), zap.Error(err))
		if !p.backoff() {
			release(false)
			return false
		}
	}
	p.stats.submitted.Add(1)
	p.pop()
	return true
}

// deadLetter sends a record that cannot be delivered to herald.dlq as it
// is, records why, and finishes it. It keeps trying until the broker acks or
// the partition stops: a corrupt record is never dropped.
func (p *partition) deadLetter(r *kgo.Record, h *Headers, reason string) bool {
	for {
		err := p.c.cfg.Producer.DeadLetterRecord(p.ctx, r, reason)
		if err == nil {
			break
		}
		if p.ctx.Err() != nil {
			return false
		}
		p.c.log.Warn("dead-lettering a corrupt retry record failed; trying again",
			zap.String("source", event.Position(r.Topic, r.Partition, r.Offset)), zap.Error(err))
		if !p.backoff() {
			return false
		}
	}
	p.c.log.Warn("retry record dead-lettered", zap.String("reason", reason),
		zap.String("source", event.Position(r.Topic, r.Partition, r.Offset)))
	j := p.job(r, h, &subscription.Subscription{ID: h.SubscriptionID})
	p.c.record(p.ctx, j, &outcome.Record{
		State:       outcome.DeadLettered,
		Error:       reason,
		AttemptedAt: p.c.cfg.Now(),
	})
	p.stats.deadLettered.Add(1)
	p.finish(r)
	p.pop()
	return true
}

func (p *partition) backoff() bool {
	t := time.NewTimer(retryBackoff)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// job rebuilds the delivery a retry record carries.
func (p *partition) job(r *kgo.Record, h *Headers, sub *subscription.Subscription) *dispatch.Job {
	topic, part, off, _ := ParseSource(h.Source)
	ev := &event.Event{
		ID:          h.EventID,
		Type:        h.EventType,
		Time:        h.EventTime,
		Topic:       topic,
		Partition:   part,
		Offset:      off,
		Key:         h.EventKey,
		Value:       r.Value,
		Headers:     h.Original,
		ContentType: h.ContentType,
		TraceParent: h.TraceParent,
	}
	if ev.Time.IsZero() {
		ev.Time = r.Timestamp
	}
	return &dispatch.Job{
		Event:             ev,
		Subscription:      sub,
		DeliveryID:        h.DeliveryID,
		Attempt:           h.Attempt,
		FirstAttemptAt:    h.FirstAttemptAt,
		OriginTraceParent: h.OriginTraceParent,
		Tier:              p.tier,
		Replay:            h.Replay,
	}
}

func (p *partition) finish(r *kgo.Record) {
	p.c.offsets.Finish(r.Topic, r.Partition, r.Offset)
}

// stop ends the worker: nothing more is submitted from this partition.
func (p *partition) stop() {
	p.cancel()
	<-p.done
	p.mu.Lock()
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
}

// drain waits for the submitted jobs to finish, or until deadline.
func (p *partition) drain(deadline <-chan time.Time) bool {
	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-deadline:
		return false
	}
}

// forget drops what is left after the partition was handed back: queued
// records go to the next owner, and fetching is unpaused in case the
// partition comes back to this instance.
func (p *partition) forget() {
	p.gone.Store(true)
	p.mu.Lock()
	p.setPausedLocked(false)
	p.stats.queued.Add(-int64(len(p.queue)))
	p.queue = nil
	p.mu.Unlock()
	p.c.offsets.Forget(p.topic, p.partition)
}
