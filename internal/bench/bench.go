// Package bench is herald's reproducible benchmark: throughput, latency,
// fan-out, matching, retry precision and memory, each reported next to a
// baseline measured in the same run on the same machine, as a ratio, because
// the machines it runs on are shared and noisy.
//
// Scenarios (BENCHMARKS.md says what each figure means):
//
//  1. limit: a plain Go HTTP client against the receiver, no Kafka, no herald
//  2. throughput: pre-produced events, herald started cold, deliveries/s
//  3. latency: a steady event rate, produce→receiver-ack percentiles
//  4. fan-out: one event type, many subscriptions, deliveries/s
//  5. matching: testing.Benchmark of the subscription index
//  6. retry precision: deliveries through a 1s tier, actual − due
//  7. memory: peak RSS of a separate herald process
//
// Run runs them against the Kafka and Redis it is given, or against an
// embedded kfake and miniredis when none are given.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Config sizes a run. Default is the full benchmark; Short is the smoke run.
type Config struct {
	// Brokers and RedisURL are the services; empty starts embedded ones.
	Brokers  []string
	RedisURL string

	// Concurrency is the limit client's concurrency and the max_in_flight
	// of the throughput subscription.
	Concurrency int

	LimitRequests int // scenario 1

	ThroughputEvents     int // scenario 2
	ThroughputPartitions int
	EventBytes           int

	LatencyRate     int           // scenario 3: events per second
	LatencyDuration time.Duration // measured part; a warm-up precedes it
	LatencyBaseline time.Duration // the plain Kafka→HTTP pipeline

	FanoutSubscriptions int // scenario 4
	FanoutEvents        int

	MatchSubscriptions int           // scenario 5
	MatchBenchtime     time.Duration // per case

	RetryDeliveries int           // scenario 6
	RetryRate       int           // events per second
	RetryTier       time.Duration // the only tier

	InFlight int // scenario 7: deliveries held by the slow receiver

	// Herald is the argv prefix that runs the herald binary for scenario 7,
	// e.g. ["bin/herald"]. Empty re-executes this program, which must call
	// ServeIfChild first thing.
	Herald []string
	// ProfileDir, when set, receives CPU and allocation profiles of
	// scenarios 2 (cpu.pprof, allocs-before.pprof, allocs.pprof) and 4
	// (fanout-cpu.pprof, …), and heap and goroutine profiles of scenario
	// 7's in-flight load.
	ProfileDir string

	// Only, when set, names the scenarios to run ("limit", "throughput",
	// "latency", "fanout", "matching", "retry", "memory"); limit runs
	// whenever a scenario needs it.
	Only []string

	// Settle is a pause after each scenario's clean-up, so that the
	// broker's deletion of its topics and the JVM's collections do not land
	// in the next scenario's figures.
	Settle time.Duration

	// Short marks a smoke run: targets are not judged.
	Short bool
	// Timeout bounds each scenario.
	Timeout time.Duration

	Log *zap.Logger // progress and herald's own warnings
}

// Default is the full benchmark as issue 6 specifies it.
func Default() Config {
	return Config{
		Concurrency:          16, // subscription.DefaultMaxInFlight
		LimitRequests:        200_000,
		ThroughputEvents:     200_000,
		ThroughputPartitions: 12,
		EventBytes:           1024,
		LatencyRate:          1000,
		LatencyDuration:      30 * time.Second,
		LatencyBaseline:      10 * time.Second,
		FanoutSubscriptions:  1000,
		FanoutEvents:         200,
		MatchSubscriptions:   100_000,
		MatchBenchtime:       time.Second,
		RetryDeliveries:      10_000,
		RetryRate:            1000,
		RetryTier:            time.Second,
		InFlight:             10_000,
		Settle:               10 * time.Second,
		Timeout:              5 * time.Minute,
	}
}

// Short is a smoke run of every scenario at tiny sizes, well under a
// minute on embedded or real services.
func Short() Config {
	c := Default()
	c.Short = true
	c.LimitRequests = 2000
	// Fewer than one endpoint's running and queued jobs (16 + 256), so
	// that none is parked in the 10s tier and the run stays short.
	c.ThroughputEvents = 200
	c.ThroughputPartitions = 4
	c.LatencyRate = 200
	c.LatencyDuration = 2 * time.Second
	c.LatencyBaseline = time.Second
	c.FanoutSubscriptions = 20
	c.FanoutEvents = 20
	c.MatchSubscriptions = 10_000
	c.MatchBenchtime = 20 * time.Millisecond
	c.RetryDeliveries = 40
	c.RetryRate = 100
	c.InFlight = 100
	c.Settle = 0
	c.Timeout = time.Minute
	return c
}

func (c *Config) wants(name string) bool {
	if len(c.Only) == 0 {
		return true
	}
	for _, n := range c.Only {
		if n == name {
			return true
		}
	}
	return false
}

// Run runs the scenarios, prints the table to out and returns the results.
// A scenario that fails is reported in Results.Errors and the others still
// run.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Results, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	svc, err := startServices(cfg.Brokers, cfg.RedisURL, cfg.ThroughputPartitions)
	if err != nil {
		return nil, err
	}
	defer svc.close()

	res := &Results{
		StartedAt: time.Now().UTC(),
		Short:     cfg.Short,
		Machine:   describeMachine(svc),
	}
	rcv, err := startReceiver()
	if err != nil {
		return nil, err
	}
	defer rcv.close()

	r := &runner{cfg: cfg, svc: svc, rcv: rcv, log: cfg.Log, id: runID()}
	defer r.cleanupAll()

	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"limit", func(ctx context.Context) (err error) { res.Limit, err = r.limit(ctx); return }},
		{"throughput", func(ctx context.Context) (err error) { res.Throughput, err = r.throughput(ctx, res.Limit); return }},
		{"latency", func(ctx context.Context) (err error) { res.Latency, err = r.latency(ctx); return }},
		{"fanout", func(ctx context.Context) (err error) {
			res.Fanout, err = r.fanout(ctx, r.limitAgain(ctx, res.Limit))
			return
		}},
		{"matching", func(ctx context.Context) (err error) { res.Matching, err = r.matching(ctx); return }},
		{"retry", func(ctx context.Context) (err error) { res.Retry, err = r.retry(ctx); return }},
		{"memory", func(ctx context.Context) (err error) { res.Memory, err = r.memory(ctx); return }},
	}
	needLimit := cfg.wants("throughput") || cfg.wants("fanout")
	for _, s := range steps {
		if !cfg.wants(s.name) && (s.name != "limit" || !needLimit) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		r.log.Info("scenario", zap.String("name", s.name))
		sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		start := time.Now()
		err := s.run(sctx)
		cancel()
		r.cleanup()
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", s.name, err))
			r.log.Warn("scenario failed", zap.String("name", s.name), zap.Error(err))
		}
		r.log.Info("scenario done", zap.String("name", s.name), zap.Duration("took", time.Since(start).Round(time.Millisecond)))
		if sleep(ctx, cfg.Settle) != nil {
			break
		}
	}
	res.judge(!cfg.Short)
	res.FinishedAt = time.Now().UTC()
	res.WriteTable(out)
	return res, ctx.Err()
}

// runner holds what the scenarios share.
type runner struct {
	cfg Config
	svc *services
	rcv *receiver
	log *zap.Logger
	id  string

	// throughputTopic holds scenario 2's events, which scenario 7 reads
	// again.
	throughputTopic string
}

// name is a topic, prefix or group name unique to this run and scenario.
func (r *runner) name(parts ...string) string {
	return "bench-" + r.id + "-" + strings.Join(parts, "-")
}

// WriteJSON writes res to path, creating its directory.
func WriteJSON(path string, res *Results) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	b, err := res.JSON()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func describeMachine(svc *services) Machine {
	host, _ := os.Hostname()
	m := Machine{
		Host:      host,
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		CPUs:      runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Kafka:     svc.kafkaDesc,
		Redis:     svc.redisDesc,
	}
	m.CPUModel, m.MemTotalMB = cpuAndMemory()
	return m
}
