package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/internal/config"
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
	if r.cfg.ProfileDir != "" {
		profiles, err := r.profileInFlight(ctx, res)
		res.Profiles = profiles
		if err != nil {
			return res, fmt.Errorf("in-flight profile: %w", err)
		}
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
	cfg, per, total, err := r.slowSetup(ctx, "memory-slow", r.cfg.InFlight)
	if err != nil {
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
	if err := r.preProduce(ctx, cfg.Sources[0].Topic, per, sameType); err != nil {
		return err
	}
	if res.InFlightReached, err = r.waitInFlight(ctx, total); err != nil {
		return err
	}
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

// slowSetup creates the topic and the subscriptions of the in-flight
// measurement: subscriptions × max_in_flight = InFlight slots, and as many
// events as each subscription has slots, so that none is parked.
func (r *runner) slowSetup(ctx context.Context, scenario string, total int) (cfg config.Config, per, _ int, err error) {
	nsubs := min(100, total)
	per = total / nsubs
	if per > subscription.MaxMaxInFlight {
		return cfg, 0, 0, fmt.Errorf("%d in flight need more than %d per subscription", total, subscription.MaxMaxInFlight)
	}
	total = nsubs * per
	topic := r.name(scenario, "events")
	if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
		return cfg, 0, 0, err
	}
	cfg = r.heraldConfig(scenario, topic)
	subs := make([]*subscription.Subscription, nsubs)
	for i := range subs {
		subs[i] = &subscription.Subscription{
			URL:    r.rcv.url + "/slow/" + strconv.Itoa(i),
			Topics: []string{topic}, EventTypes: []string{eventType},
			MaxInFlight: per, TimeoutMS: subscription.MaxTimeoutMS,
		}
	}
	_, err = r.createSubscriptions(ctx, cfg, subs)
	return cfg, per, total, err
}

// waitInFlight waits until the slow receiver holds total requests, or 40s:
// held requests time out after MaxTimeoutMS, so measure well before.
func (r *runner) waitInFlight(ctx context.Context, total int) (int64, error) {
	deadline := time.Now().Add(40 * time.Second)
	for r.rcv.inFlight.Load() < int64(total) && time.Now().Before(deadline) {
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return r.rcv.inFlight.Load(), err
		}
	}
	return r.rcv.inFlight.Load(), nil
}

// profileInFlight runs half the in-flight load through herald in this
// process and writes heap and goroutine profiles at the plateau: what the
// peak RSS of scenario 7 is made of. Half, because both ends of every held
// connection are then in this process, and the whole load would need more
// file descriptors than a process usually may open.
func (r *runner) profileInFlight(ctx context.Context, res *Memory) ([]string, error) {
	dir := r.cfg.ProfileDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg, per, total, err := r.slowSetup(ctx, "memory-profile", max(1, r.cfg.InFlight/2))
	if err != nil {
		return nil, err
	}
	r.rcv.holdSlow()
	defer r.rcv.releaseSlow()
	h, err := r.startHerald(ctx, cfg, -1)
	if err != nil {
		return nil, err
	}
	defer func() {
		r.rcv.releaseSlow()
		_ = h.shutdown()
	}()
	if err := r.preProduce(ctx, cfg.Sources[0].Topic, per, sameType); err != nil {
		return nil, err
	}
	if n, err := r.waitInFlight(ctx, total); err != nil || n < int64(total) {
		return nil, errors.Join(err, fmt.Errorf("%d of %d in flight", n, total))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.ProfileInFlight = total
	res.ProfileHeapInuseMB = round(float64(ms.HeapInuse)/(1<<20), 1)
	res.ProfileStackInuseMB = round(float64(ms.StackInuse)/(1<<20), 1)
	res.ProfileGoroutines = runtime.NumGoroutine()
	heap, gr := filepath.Join(dir, "inflight-heap.pprof"), filepath.Join(dir, "inflight-goroutine.pprof")
	if err := writeProfile("heap", heap); err != nil {
		return nil, err
	}
	if err := writeProfile("goroutine", gr); err != nil {
		return nil, err
	}
	return []string{heap, gr}, nil
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
	var waitErr error
	for waitErr == nil && r.rcv.requests.Load() < int64(n) {
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Errorf("herald exited after %d of %d deliveries: %v: %s", r.rcv.requests.Load(), n, err, tail(c.log.String()))
		case <-ctx.Done():
			// Still report the peak so far.
			waitErr = fmt.Errorf("%d of %d delivered: %w", r.rcv.requests.Load(), n, ctx.Err())
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
		res.ThroughputPerSec = round(float64(r.rcv.requests.Load())/span.Seconds(), 1)
	}
	if waitErr != nil {
		return waitErr
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
