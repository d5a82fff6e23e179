package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
)

// throughput is scenario 2: events pre-produced to a partitioned topic, one
// subscription, herald started cold; deliveries per second from the first
// request at the receiver to the last delivered outcome, with dedupe,
// signing and outcomes on as herald runs them by default.
func (r *runner) throughput(ctx context.Context, limit *Limit) (*Throughput, error) {
	n := r.cfg.ThroughputEvents
	topic := r.name("throughput", "events")
	r.log.Sugar().Infof("throughput: producing %d events of %d bytes to %d partitions", n, r.cfg.EventBytes, r.cfg.ThroughputPartitions)
	if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
		return nil, err
	}
	if err := r.preProduce(ctx, topic, n, sameType); err != nil {
		return nil, err
	}
	r.throughputTopic = topic

	cfg := r.heraldConfig("throughput", topic)
	if _, err := r.createSubscriptions(ctx, cfg, []*subscription.Subscription{{
		URL: r.rcv.url + "/", Topics: []string{topic}, EventTypes: []string{"order.*"},
		MaxInFlight: r.cfg.Concurrency,
	}}); err != nil {
		return nil, err
	}

	stopProfile, err := r.startProfile("")
	if err != nil {
		return nil, err
	}
	r.rcv.reset()
	h, err := r.startHerald(ctx, cfg, int64(n))
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
	res := &Throughput{
		Events:         n,
		EventBytes:     r.cfg.EventBytes,
		Partitions:     r.cfg.ThroughputPartitions,
		MaxInFlight:    r.cfg.Concurrency,
		Delivered:      delivered,
		Requests:       r.rcv.requests.Load(),
		Outcomes:       h.outcomes(),
		TierRecords:    r.svc.tierRecords(cfg),
		Errors:         h.errorSample(),
		StartupSeconds: round(time.Unix(0, first).Sub(h.started).Seconds(), 3),
		Seconds:        round(span.Seconds(), 3),
		Profiles:       profiles,
	}
	if first > 0 && span > 0 {
		res.DeliveriesPerSec = round(float64(delivered)/span.Seconds(), 1)
	}
	if limit != nil {
		res.LimitPerSec = limit.DeliveriesPerSec
		res.ThroughputRatio = ratio(res.DeliveriesPerSec, limit.DeliveriesPerSec)
	}
	r.log.Sugar().Infof("throughput: %d of %d delivered in %v: %.0f/s, ratio %.2f; %d records handed to retry tiers",
		delivered, n, span.Round(time.Millisecond), res.DeliveriesPerSec, res.ThroughputRatio, res.TierRecords)
	// The limit again, right after: whether the machine's speed drifted
	// while the scenario ran (limitAgain hands back limit when it fails).
	if waitErr == nil {
		if after := r.limitAgain(ctx, limit); after != limit {
			res.LimitAfterPerSec = after.DeliveriesPerSec
		}
	}
	// An incomplete run still reports its rate so far, marked by the error.
	return res, errors.Join(waitErr, perr, wrap("herald", stopErr))
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// startProfile starts a CPU profile and snapshots allocations when a
// profile directory is set; the returned func stops it and writes the
// files, their names prefixed by prefix. Allocation profiles are
// cumulative: compare allocs.pprof with -base allocs-before.pprof to see
// what the scenario allocated.
func (r *runner) startProfile(prefix string) (stop func() ([]string, error), err error) {
	dir := r.cfg.ProfileDir
	if dir == "" {
		return func() ([]string, error) { return nil, nil }, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	before := filepath.Join(dir, prefix+"allocs-before.pprof")
	if err := writeProfile("allocs", before); err != nil {
		return nil, err
	}
	cpuPath := filepath.Join(dir, prefix+"cpu.pprof")
	f, err := os.Create(cpuPath)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() ([]string, error) {
		pprof.StopCPUProfile()
		err := f.Close()
		after := filepath.Join(dir, prefix+"allocs.pprof")
		return []string{cpuPath, before, after}, errors.Join(err, writeProfile("allocs", after))
	}, nil
}

func writeProfile(name, path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
