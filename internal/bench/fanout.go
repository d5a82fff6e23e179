package bench

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
)

// fanout is scenario 4: one event type, many subscriptions to the same
// receiver on distinct paths, events pre-produced and herald started cold;
// deliveries per second from the first request to the last delivered
// outcome.
func (r *runner) fanout(ctx context.Context, limit *Limit) (*Fanout, error) {
	m, e := r.cfg.FanoutSubscriptions, r.cfg.FanoutEvents
	topic := r.name("fanout", "events")
	if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
		return nil, err
	}
	if err := r.preProduce(ctx, topic, e, sameType); err != nil {
		return nil, err
	}
	cfg := r.heraldConfig("fanout", topic)
	subs := make([]*subscription.Subscription, m)
	for i := range subs {
		subs[i] = &subscription.Subscription{
			URL:    r.rcv.url + "/fanout/" + strconv.Itoa(i),
			Topics: []string{topic}, EventTypes: []string{eventType},
		}
	}
	r.log.Sugar().Infof("fanout: creating %d subscriptions", m)
	if _, err := r.createSubscriptions(ctx, cfg, subs); err != nil {
		return nil, err
	}

	total := int64(m) * int64(e)
	stopProfile, err := r.startProfile("fanout-")
	if err != nil {
		return nil, err
	}
	r.rcv.reset()
	h, err := r.startHerald(ctx, cfg, total)
	if err != nil {
		_, _ = stopProfile()
		return nil, err
	}
	waitErr := h.wait(ctx)
	end := time.Now()
	profiles, perr := stopProfile()
	stopErr := h.shutdown()
	if waitErr == nil {
		end = time.Unix(0, h.reachedAt.Load())
	}
	first := r.rcv.first.Load()
	delivered := h.delivered.Load()
	span := end.Sub(time.Unix(0, first))
	res := &Fanout{
		Subscriptions: m, Events: e, Deliveries: total, Delivered: delivered,
		Outcomes:    h.outcomes(),
		TierRecords: r.svc.tierRecords(cfg),
		Errors:      h.errorSample(),
		Seconds:     round(span.Seconds(), 3),
		Profiles:    profiles,
	}
	if first > 0 && span > 0 {
		res.DeliveriesPerSec = round(float64(delivered)/span.Seconds(), 1)
	}
	if limit != nil {
		res.LimitPerSec = limit.DeliveriesPerSec
		res.ThroughputRatio = ratio(res.DeliveriesPerSec, limit.DeliveriesPerSec)
	}
	r.log.Sugar().Infof("fanout: %d of %d delivered in %v: %.0f/s, ratio %.2f; %d records handed to retry tiers",
		delivered, total, span.Round(time.Millisecond), res.DeliveriesPerSec, res.ThroughputRatio, res.TierRecords)
	// An incomplete run still reports its rate so far, marked by the error.
	return res, errors.Join(waitErr, perr, wrap("herald", stopErr))
}
