package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/kafka"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// heraldConfig is herald's configuration for one scenario: the run's
// services, the given source topics, and topic prefix and groups of its own
// so that scenarios never see each other's records.
func (r *runner) heraldConfig(scenario string, sources ...string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = r.svc.brokers
	cfg.Kafka.Group = r.name(scenario, "group")
	cfg.Kafka.RetryGroup = r.name(scenario, "retry-group")
	cfg.Kafka.ClientID = "herald-bench"
	cfg.Redis.URL = r.svc.redisURL
	for _, s := range sources {
		cfg.Sources = append(cfg.Sources, config.Source{Topic: s})
	}
	cfg.Secrets.MasterKey = randomBase64(32)
	cfg.API.Tokens = []string{"bench_" + randomHex(16)}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Delivery.AllowPrivateNetworks = true
	cfg.Topics.Prefix = r.name(scenario) + "."
	cfg.Log.Level = "warn"
	return cfg
}

// createSubscriptions writes subs to the subscriptions topic of cfg before
// herald starts, so that herald starts cold with them: they are loaded
// before its consumers join, and no event is matched against an incomplete
// set.
func (r *runner) createSubscriptions(ctx context.Context, cfg config.Config, subs []*subscription.Subscription) ([]*subscription.Subscription, error) {
	topic := kafka.Topics{Prefix: cfg.Topics.Prefix}.Subscriptions()
	if err := subscription.EnsureTopic(ctx, r.svc.adm, topic); err != nil {
		return nil, err
	}
	// A loaded broker may take longer to elect the new topic's leader than
	// the Store waits for.
	if err := r.svc.waitTopic(ctx, topic, 1); err != nil {
		return nil, err
	}
	key, err := subscription.ParseMasterKey(cfg.Secrets.MasterKey)
	if err != nil {
		return nil, err
	}
	cipher, err := subscription.NewCipher(key)
	if err != nil {
		return nil, err
	}
	st := subscription.NewStore(r.svc.brokers, topic, cipher)
	sctx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- st.Run(sctx) }()
	defer func() { stop(); <-runErr }()
	if err := st.WaitReady(ctx); err != nil {
		select {
		case rerr := <-runErr:
			runErr <- rerr
			err = errors.Join(err, rerr)
		default:
		}
		return nil, err
	}

	created := make([]*subscription.Subscription, len(subs))
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	for range min(16, len(subs)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(subs); i = int(next.Add(1) - 1) {
				s, _, err := st.Create(ctx, subs[i])
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("creating subscription %d: %w", i, err) })
					return
				}
				created[i] = s
			}
		})
	}
	wg.Wait()
	return created, firstErr
}

// heraldRun is herald running in this process, counting outcomes.
type heraldRun struct {
	started time.Time
	app     *app.App
	stop    context.CancelFunc
	done    chan error

	stopOnce sync.Once
	stopErr  error

	target    int64
	delivered atomic.Int64
	reached   chan struct{}
	reachedAt atomic.Int64 // unix ns of the target-th delivered outcome
	states    sync.Map     // outcome.State → *atomic.Int64

	errMu  sync.Mutex
	errors map[string]int64 // a sample of outcome errors, by text

	// split, when set, times delivered attempts of events sent from its
	// start: where scenario 3's latency goes.
	split atomic.Pointer[latencySplit]
}

// latencySplit divides produce→ack latency at the start of herald's
// attempt: before it, Kafka, the consumer and the dispatcher's queue;
// after it, dedupe, signing and the request (the outcome's latency_ms).
type latencySplit struct {
	from            int64
	mu              sync.Mutex
	toAttempt, http *hdrhistogram.Histogram
}

func (s *latencySplit) record(sent int64, rec *outcome.Record) {
	if sent < s.from {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.toAttempt.RecordValue(max(1, (rec.AttemptedAt.UnixNano()-sent)/int64(time.Microsecond)))
	_ = s.http.RecordValue(max(1, int64(rec.LatencyMS*1000)))
}

// maxErrorTexts bounds the sample of distinct outcome errors kept.
const maxErrorTexts = 20

// startHerald runs herald with cfg until stop, and returns once it is
// ready. reached is closed when target attempts were delivered.
func (r *runner) startHerald(ctx context.Context, cfg config.Config, target int64) (*heraldRun, error) {
	h := &heraldRun{target: target, reached: make(chan struct{}), done: make(chan error, 1), errors: make(map[string]int64)}
	ready := make(chan *app.App, 1)
	rctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	h.started = time.Now()
	log := r.log.Named("herald").WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	go func() {
		h.done <- app.Run(rctx, cfg, app.Options{
			Logger:  log,
			Observe: h.observe,
			OnReady: func(a *app.App) { ready <- a },
		})
	}()
	select {
	case h.app = <-ready:
		return h, nil
	case err := <-h.done:
		stop()
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, fmt.Errorf("herald: %w", err)
	case <-ctx.Done():
		stop()
		<-h.done
		return nil, ctx.Err()
	}
}

func (h *heraldRun) observe(_ context.Context, j *dispatch.Job, rec *outcome.Record) {
	if sp := h.split.Load(); sp != nil && rec.State == "delivered" {
		if sent, ok := sentNanos(j.Event.Value); ok {
			sp.record(sent, rec)
		}
	}
	c, ok := h.states.Load(rec.State)
	if !ok {
		c, _ = h.states.LoadOrStore(rec.State, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
	if rec.State == "delivered" && h.delivered.Add(1) == h.target {
		h.reachedAt.Store(time.Now().UnixNano())
		close(h.reached)
	}
	if rec.Error != "" {
		text := string(rec.State) + ": " + rec.Error
		if len(text) > 160 {
			text = text[:160]
		}
		h.errMu.Lock()
		if _, ok := h.errors[text]; ok || len(h.errors) < maxErrorTexts {
			h.errors[text]++
		}
		h.errMu.Unlock()
	}
}

// errorSample returns the outcome errors seen, by text.
func (h *heraldRun) errorSample() map[string]int64 {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	if len(h.errors) == 0 {
		return nil
	}
	return maps.Clone(h.errors)
}

// wait blocks until the target is reached, ctx ends or herald stops.
func (h *heraldRun) wait(ctx context.Context) error {
	select {
	case <-h.reached:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d of %d delivered (outcomes %v): %w", h.delivered.Load(), h.target, h.outcomes(), ctx.Err())
	case err := <-h.done:
		h.done <- err
		return fmt.Errorf("herald stopped after %d of %d deliveries: %v", h.delivered.Load(), h.target, err)
	}
}

// shutdown stops herald and waits for its drain. Calls after the first
// return the first one's result.
func (h *heraldRun) shutdown() error {
	h.stopOnce.Do(func() {
		h.stop()
		select {
		case h.stopErr = <-h.done:
		case <-time.After(time.Minute):
			h.stopErr = errors.New("herald did not stop within a minute")
		}
	})
	return h.stopErr
}

func (h *heraldRun) outcomes() map[string]int64 {
	m := make(map[string]int64)
	h.states.Range(func(k, v any) bool {
		m[string(k.(outcome.State))] = v.(*atomic.Int64).Load()
		return true
	})
	return m
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
