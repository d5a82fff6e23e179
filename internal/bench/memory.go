package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
)

// memory is scenario 7: the resident set of herald as a process of its own
// (VmHWM, the kernel's high-water mark), idle, while it works through
// scenario 2's events, and while a slow receiver holds InFlight deliveries.
// The idle figure is the baseline of the ratios.
func (r *runner) memory(ctx context.Context) (*Memory, error) {
	res := &Memory{Herald: "self (ServeIfChild)", InFlightTarget: r.cfg.InFlight}
	if len(r.cfg.Herald) > 0 {
		res.Herald = strings.Join(r.cfg.Herald, " ")
	}
	if err := r.memoryInFlight(ctx, res); err != nil {
		return res, fmt.Errorf("in flight: %w", err)
	}
	if err := r.memoryThroughput(ctx, res); err != nil {
		return res, fmt.Errorf("throughput: %w", err)
	}
	return res, nil
}

// memoryInFlight measures idle RSS, then holds InFlight deliveries at the
// slow receiver: subscriptions × max_in_flight of them, each subscription
// getting as many events as it has slots, so none is parked.
func (r *runner) memoryInFlight(ctx context.Context, res *Memory) error {
	total := r.cfg.InFlight
	nsubs := min(100, total)
	per := total / nsubs
	if per > subscription.MaxMaxInFlight {
		return fmt.Errorf("%d in flight need more than %d per subscription", total, subscription.MaxMaxInFlight)
	}
	total = nsubs * per

	topic := r.name("memory", "slow")
	if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
		return err
	}
	cfg := r.heraldConfig("memory-slow", topic)
	subs := make([]*subscription.Subscription, nsubs)
	for i := range subs {
		subs[i] = &subscription.Subscription{
			URL:    r.rcv.url + "/slow/" + strconv.Itoa(i),
			Topics: []string{topic}, EventTypes: []string{eventType},
			MaxInFlight: per, TimeoutMS: subscription.MaxTimeoutMS,
		}
	}
	if _, err := r.createSubscriptions(ctx, cfg, subs); err != nil {
		return err
	}
	r.rcv.holdSlow()
	c, err := r.startChild(ctx, cfg)
	if err != nil {
		r.rcv.releaseSlow()
		return err
	}
	defer func() {
		r.rcv.releaseSlow()
		_ = c.stop()
	}()

	// Idle: ready, subscriptions loaded, consumers joined, nothing to do.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	idle, _, err := c.rssKB()
	if err != nil {
		return err
	}
	res.IdleRSSMB = mb(idle)

	r.rcv.reset()
	if err := r.preProduce(ctx, topic, per, sameType); err != nil {
		return err
	}
	// Held requests time out after MaxTimeoutMS; measure well before.
	deadline := time.Now().Add(40 * time.Second)
	for r.rcv.inFlight.Load() < int64(total) && time.Now().Before(deadline) {
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	res.InFlightReached = r.rcv.inFlight.Load()
	// Let buffers settle at the plateau before reading the peak.
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	_, peak, err := c.rssKB()
	if err != nil {
		return err
	}
	res.InFlightPeakRSSMB = mb(peak)
	res.InFlightPeakRSSRatio = ratio(res.InFlightPeakRSSMB, res.IdleRSSMB)
	r.log.Sugar().Infof("memory: idle %.1f MB, %d in flight: peak %.1f MB", res.IdleRSSMB, res.InFlightReached, res.InFlightPeakRSSMB)
	r.rcv.releaseSlow()
	if res.InFlightReached < int64(total) {
		return fmt.Errorf("only %d of %d deliveries reached the slow receiver within 40s", res.InFlightReached, total)
	}
	return c.stop()
}

// memoryThroughput runs scenario 2's events through a herald process and
// reads its peak RSS.
func (r *runner) memoryThroughput(ctx context.Context, res *Memory) error {
	topic := r.throughputTopic
	n := r.cfg.ThroughputEvents
	if topic == "" {
		topic = r.name("memory", "events")
		if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
			return err
		}
		if err := r.preProduce(ctx, topic, n, sameType); err != nil {
			return err
		}
	}
	res.ThroughputEvents = n
	cfg := r.heraldConfig("memory-throughput", topic)
	if _, err := r.createSubscriptions(ctx, cfg, []*subscription.Subscription{{
		URL: r.rcv.url + "/", Topics: []string{topic}, EventTypes: []string{"order.*"},
		MaxInFlight: r.cfg.Concurrency,
	}}); err != nil {
		return err
	}
	r.rcv.reset()
	c, err := r.startChild(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.stop()
	for r.rcv.requests.Load() < int64(n) {
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Errorf("herald exited after %d of %d deliveries: %v: %s", r.rcv.requests.Load(), n, err, tail(c.log.String()))
		case <-ctx.Done():
			return fmt.Errorf("%d of %d delivered: %w", r.rcv.requests.Load(), n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	_, peak, err := c.rssKB()
	if err != nil {
		return err
	}
	res.ThroughputPeakRSSMB = mb(peak)
	res.ThroughputPeakRSSRatio = ratio(res.ThroughputPeakRSSMB, res.IdleRSSMB)
	if span := r.rcv.span(); span > 0 {
		res.ThroughputPerSec = round(float64(n)/span.Seconds(), 1)
	}
	r.log.Sugar().Infof("memory: %d events through a herald process: peak %.1f MB, %.0f/s", n, res.ThroughputPeakRSSMB, res.ThroughputPerSec)
	return c.stop()
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
