package bench

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
)

// deliveriesPerRetrySub keeps every subscription under the circuit
// breaker's threshold of 5 consecutive failures, so that each first attempt
// fails, goes to the tier, and is timed, rather than being parked by an open
// circuit.
const deliveriesPerRetrySub = 4

// retry is scenario 6: deliveries whose first attempt fails go through the
// only retry tier; lateness is the second attempt's arrival at the receiver
// minus the due time herald wrote on the tier record (herald-due-at, jitter
// included).
func (r *runner) retry(ctx context.Context) (*Retry, error) {
	k := r.cfg.RetryDeliveries
	nsubs := (k + deliveriesPerRetrySub - 1) / deliveriesPerRetrySub
	typeOf := func(i int) string { return "bench.retry." + strconv.Itoa(i%nsubs) }

	topic := r.name("retry", "events")
	if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
		return nil, err
	}
	cfg := r.heraldConfig("retry", topic)
	cfg.Retry.Tiers = config.Durations{r.cfg.RetryTier}
	subs := make([]*subscription.Subscription, nsubs)
	for i := range subs {
		subs[i] = &subscription.Subscription{
			URL:    r.rcv.url + "/retry/" + strconv.Itoa(i),
			Topics: []string{topic}, EventTypes: []string{typeOf(i)},
		}
	}
	r.log.Sugar().Infof("retry: creating %d subscriptions", nsubs)
	if _, err := r.createSubscriptions(ctx, cfg, subs); err != nil {
		return nil, err
	}
	r.rcv.retry.reset()
	h, err := r.startHerald(ctx, cfg, int64(k))
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.shutdown() }()

	// Precision is a steady-state figure: start once both consumers own
	// their partitions, not while the tier consumer is still joining.
	if err := r.svc.waitGroups(ctx, cfg.Kafka.Group, cfg.Kafka.RetryGroup); err != nil {
		return nil, err
	}
	tier := retry.TopicName(cfg.Topics.Prefix, r.cfg.RetryTier)
	dues, stopTail, err := r.tailTier(ctx, tier)
	if err != nil {
		return nil, err
	}
	cl, err := r.producer(0)
	if err != nil {
		stopTail()
		return nil, err
	}
	defer cl.Close()
	err = r.paced(ctx, cl, topic, k, r.cfg.RetryRate, typeOf)
	if err == nil {
		err = h.wait(ctx)
	}
	stopTail()
	res := dues.judge(&r.rcv.retry, k, r.cfg.RetryTier)
	res.Outcomes, res.Errors = h.outcomes(), h.errorSample()
	return res, errors.Join(err, wrap("herald", h.shutdown()))
}

// tierLog is what the tier topic said: the due time of each delivery's
// second attempt, and how many records were parks.
type tierLog struct {
	mu     sync.Mutex
	due    map[string]time.Time
	parked int
}

// tailTier reads the tier topic from its start until stop.
func (r *runner) tailTier(ctx context.Context, topic string) (*tierLog, func(), error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(r.svc.brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, nil, err
	}
	l := &tierLog{due: make(map[string]time.Time)}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(cctx)
			if cctx.Err() != nil {
				return
			}
			fs.EachRecord(func(rec *kgo.Record) {
				h, err := retry.ParseHeaders(rec.Headers)
				if err != nil {
					return
				}
				l.mu.Lock()
				if h.Attempt == 2 {
					l.due[h.DeliveryID] = h.DueAt
				} else {
					l.parked++
				}
				l.mu.Unlock()
			})
		}
	}()
	stop := func() {
		// The last tier records may still be on their way to this tail.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			l.mu.Lock()
			n := len(l.due)
			l.mu.Unlock()
			_, second := r.rcv.retry.counts()
			if n >= second {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		cl.Close()
	}
	return l, stop, nil
}

func (l *tierLog) judge(rl *retryLog, k int, tier time.Duration) *Retry {
	l.mu.Lock()
	defer l.mu.Unlock()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	late := newLatencyHistogram()
	since := newLatencyHistogram()
	res := &Retry{Deliveries: k, TierMS: ms(tier), Parked: l.parked, Extra: rl.extra}
	minLate := time.Duration(1<<63 - 1)
	for id, at := range rl.second {
		due, ok := l.due[id]
		if !ok {
			continue
		}
		res.Retried++
		d := at.Sub(due)
		minLate = min(minLate, d)
		if d < 0 {
			res.Early++
			d = 0
		}
		_ = late.RecordValue(max(1, d.Microseconds()))
		_ = since.RecordValue(max(1, at.Sub(rl.seen[id]).Microseconds()))
	}
	if res.Retried == 0 {
		return res
	}
	f := figures(late)
	res.LateMinMS = ms(minLate)
	res.LateP50MS, res.LateP99MS, res.LateP999MS, res.LateMaxMS = f.P50MS, f.P99MS, f.P999MS, f.MaxMS
	res.SinceFailureP99MS = figures(since).P99MS
	res.LateP99TierRatio = ratio(res.LateP99MS, res.TierMS)
	return res
}

func (l *retryLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = make(map[string]time.Time)
	l.second = make(map[string]time.Time)
	l.extra = 0
}
