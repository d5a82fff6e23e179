// Command herald-bench runs herald's benchmark (internal/bench) against the
// Kafka and Redis it is given, or embedded ones, prints a table and writes
// the results as JSON. See BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/bench"
)

func main() {
	bench.ServeIfChild()

	var (
		short   = flag.Bool("short", false, "smoke run: tiny sizes, targets not judged")
		kafka   = flag.String("kafka", os.Getenv("HERALD_KAFKA_BROKERS"), "comma-separated Kafka bootstrap addresses; empty starts an embedded kfake (env HERALD_KAFKA_BROKERS)")
		redis   = flag.String("redis", os.Getenv("HERALD_REDIS_URL"), "Redis URL; empty starts an embedded miniredis (env HERALD_REDIS_URL)")
		out     = flag.String("out", "bench/results.json", "where to write the results as JSON; empty: nowhere")
		profile = flag.String("profile", "", "directory for CPU and allocation profiles of scenario 2")
		herald  = flag.String("herald", "", "herald binary for scenario 7; empty runs this program as herald")
		only    = flag.String("only", "", "comma-separated scenarios: limit,throughput,latency,fanout,matching,retry,memory")
		conc    = flag.Int("concurrency", 0, "limit client concurrency and the throughput subscription's max_in_flight (default 16)")
		events  = flag.Int("events", 0, "events of scenario 2 (default 200000)")
	)
	flag.Parse()

	cfg := bench.Default()
	if *short {
		cfg = bench.Short()
	}
	if *kafka != "" {
		cfg.Brokers = strings.Split(*kafka, ",")
	}
	cfg.RedisURL = *redis
	cfg.ProfileDir = *profile
	if *herald != "" {
		cfg.Herald = []string{*herald}
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	if *conc > 0 {
		cfg.Concurrency = *conc
	}
	if *events > 0 {
		cfg.ThroughputEvents = *events
	}
	log, err := zap.NewDevelopment(zap.IncreaseLevel(zap.InfoLevel))
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-bench:", err)
		os.Exit(1)
	}
	cfg.Log = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg, os.Stdout)
	if res != nil && *out != "" {
		if werr := bench.WriteJSON(*out, res); werr != nil {
			fmt.Fprintln(os.Stderr, "herald-bench:", werr)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "results written to", *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-bench:", err)
		os.Exit(1)
	}
	if len(res.Errors) > 0 {
		os.Exit(1)
	}
}
