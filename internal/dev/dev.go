// Package dev runs herald with nothing installed: an embedded Kafka-protocol
// broker (franz-go's kfake, data under .herald/), an embedded Redis
// (miniredis), a demo subscriber that verifies every signature, a demo
// producer and a live log of deliveries. It is what `herald dev` runs.
package dev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/telemetry"
)

// Options configure a dev run.
type Options struct {
	// Dir holds the embedded broker's data and the generated master key.
	// Default ".herald".
	Dir string
	// KafkaPort is the embedded broker's port; 0 tries 9092, then any.
	KafkaPort int
	// Produce is the demo producer's interval; 0 disables it.
	Produce time.Duration
	Out     io.Writer
	// Logger, when set, replaces the telemetry logger (tests).
	Logger *zap.Logger
	// Telemetry sets up herald's logs, traces and metrics.
	Telemetry telemetry.Config
}

const demoTopic = "orders"

// Run starts the embedded services and herald, and blocks until ctx ends.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	if opts.Dir == "" {
		opts.Dir = ".herald"
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return err
	}
	out := opts.Out

	if len(cfg.Kafka.Brokers) == 0 {
		cluster, err := startBroker(opts)
		if err != nil {
			return fmt.Errorf("embedded Kafka: %w", err)
		}
		defer cluster.Close()
		cfg.Kafka.Brokers = cluster.ListenAddrs()
	}
	if cfg.Redis.URL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return fmt.Errorf("embedded Redis: %w", err)
		}
		defer mr.Close()
		cfg.Redis.URL = "redis://" + mr.Addr() + "/0"
	}
	if cfg.Secrets.MasterKey == "" {
		key, err := loadOrCreateKey(filepath.Join(opts.Dir, "master.key"))
		if err != nil {
			return err
		}
		cfg.Secrets.MasterKey = key
	}
	if len(cfg.API.Tokens) == 0 {
		cfg.API.Tokens = []string{"dev_" + randomHex(16)}
	}
	if len(cfg.Sources) == 0 {
		cfg.Sources = []config.Source{{Topic: demoTopic}}
	}
	cfg.Delivery.AllowPrivateNetworks = true

	// A second herald dev, or anything else on 8080, must not stop this one.
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil && cfg.API.Listen == config.Default().API.Listen {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return fmt.Errorf("config: api.listen: %w", err)
	}

	if err := createSources(ctx, cfg); err != nil {
		return err
	}
	receiver, err := startReceiver(out)
	if err != nil {
		return err
	}
	defer receiver.Close()

	fmt.Fprintf(out, "herald dev\n")
	fmt.Fprintf(out, "  kafka     %s   (produce your own events to %q with any Kafka client)\n", strings.Join(cfg.Kafka.Brokers, ","), cfg.Sources[0].Topic)
	fmt.Fprintf(out, "  redis     %s\n", cfg.Redis.URL)
	fmt.Fprintf(out, "  receiver  %s   (demo subscriber, verifies every signature)\n", receiver.URL())

	return app.Run(ctx, cfg, app.Options{
		Logger:    opts.Logger,
		Telemetry: opts.Telemetry,
		Listener:  ln,
		Observe: func(_ context.Context, j *dispatch.Job, r *outcome.Record) {
			printDelivery(out, j, r)
		},
		OnReady: func(a *app.App) {
			fmt.Fprintf(out, "  api       http://%s   token %s\n", a.Addr(), cfg.API.Tokens[0])
			fmt.Fprintf(out, "  try       curl -H 'Authorization: Bearer %s' http://%s/v1/subscriptions\n\n", cfg.API.Tokens[0], a.Addr())
			if err := ensureDemoSubscription(ctx, a.Subscriptions(), receiver, cfg.Sources[0].Topic); err != nil {
				fmt.Fprintf(out, "demo subscription: %v\n", err)
				return
			}
			if opts.Produce > 0 {
				go produceDemo(ctx, cfg, opts.Produce, out)
			}
		},
	})
}

func startBroker(opts Options) (*kfake.Cluster, error) {
	base := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(filepath.Join(opts.Dir, "kafka")), kfake.DefaultNumPartitions(3)}
	if opts.KafkaPort != 0 {
		return kfake.NewCluster(append(base, kfake.Ports(opts.KafkaPort))...)
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:9092"); err == nil {
		ln.Close()
		if c, err := kfake.NewCluster(append(base, kfake.Ports(9092))...); err == nil {
			return c, nil
		}
	}
	return kfake.NewCluster(base...)
}

func createSources(ctx context.Context, cfg config.Config) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, s := range cfg.Sources {
		resp, err := adm.CreateTopic(ctx, 3, 1, nil, s.Topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", s.Topic, err)
		}
	}
	return nil
}

// ensureDemoSubscription subscribes the demo receiver to every event of the
// demo topic. The subscription is kept across runs; its secret is rotated at
// each start so the receiver learns it (secrets are shown only once).
func ensureDemoSubscription(ctx context.Context, store *subscription.Store, r *receiver, topic string) error {
	for _, s := range store.List() {
		if s.Tenant == "herald-dev" && s.Description == "demo subscriber" {
			if s.URL != r.URL() {
				if _, err := store.Update(ctx, s.ID, 0, func(sub *subscription.Subscription) error {
					sub.URL = r.URL()
					return nil
				}); err != nil {
					return err
				}
			}
			secret, err := store.RotateSecret(ctx, s.ID, 0)
			if err != nil {
				return err
			}
			return r.SetSecret(secret)
		}
	}
	_, secret, err := store.Create(ctx, &subscription.Subscription{
		URL:         r.URL(),
		Description: "demo subscriber",
		Tenant:      "herald-dev",
		Topics:      []string{topic},
		EventTypes:  []string{"order.*"},
	})
	if err != nil {
		return err
	}
	return r.SetSecret(secret)
}

func loadOrCreateKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	enc := base64.StdEncoding.EncodeToString(key)
	if err := os.WriteFile(path, []byte(enc+"\n"), 0o600); err != nil {
		return "", err
	}
	return enc, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
