// Package app is herald's composition root: it builds the clients and roles
// from the configuration, starts them in order, and drains them in the
// reverse order on shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/api"
	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dedupe"
	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/history"
	"github.com/herald-dev/herald/internal/ingest"
	"github.com/herald-dev/herald/internal/kafka"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/ratelimit"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/telemetry"
)

// Options are what a caller of Run adds to the configuration.
type Options struct {
	// Telemetry configures logs and names herald in traces and metrics;
	// the standard OTEL_* variables say where spans go. Run sets it up first
	// and shuts it down last in the drain.
	Telemetry telemetry.Config
	// Logger, when set, is used instead of the telemetry logger (tests).
	Logger *zap.Logger
	// Observe sees every finished attempt; herald dev prints them.
	Observe func(ctx context.Context, j *dispatch.Job, r *outcome.Record)
	// OnReady is called once the subscriptions are loaded and every role runs.
	OnReady func(*App)
	// Listener, when set, serves the API instead of listening on api.listen.
	Listener net.Listener
}

// App is a running herald instance.
type App struct {
	cfg   config.Config
	log   *zap.Logger
	ready atomic.Bool

	client *kgo.Client // producer and admin
	adm    *kadm.Client
	rdb    *redis.Client
	store  *subscription.Store
	addr   string
	tel    *telemetry.Telemetry
}

// Subscriptions is the instance's subscription store.
func (a *App) Subscriptions() *subscription.Store { return a.store }

// Addr is the address the admin API listens on.
func (a *App) Addr() string { return a.addr }

// Run runs herald until ctx ends, then drains in order: stop fetching, finish
// or hand off in-flight deliveries, commit, flush producers, close.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, opts.Telemetry)
	if err != nil {
		return err
	}
	// Last in the drain: spans of the final attempts, then logger.Sync().
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	log := opts.Logger
	if log == nil {
		log = tel.Logger()
	}
	a := &App{cfg: cfg, log: log, tel: tel}
	return a.run(ctx, opts)
}

func (a *App) run(ctx context.Context, opts Options) error {
	cfg, log := a.cfg, a.log
	topics := kafka.Topics{Prefix: cfg.Topics.Prefix}
	tiers := []time.Duration(cfg.Retry.Tiers)

	// The API comes first so /healthz answers and /readyz says why herald
	// is not ready while Kafka or the subscriptions are still loading.
	var (
		apiSrv *http.Server
		apiErr = make(chan error, 1)
	)

	cl, err := kafka.NewClient(cfg.Kafka, log, kgo.WithHooks(telemetry.TraceHeaders{}))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	a.client = cl
	a.adm = kadm.NewClient(cl)
	ocl, err := newOutcomeClient(cfg.Kafka, log, topics.Outcomes())
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer ocl.Close()

	ropts, err := redisOptions(cfg.Redis.URL)
	if err != nil {
		return err
	}
	a.rdb = redis.NewClient(ropts)
	defer a.rdb.Close()

	key, err := subscription.ParseMasterKey(cfg.Secrets.MasterKey)
	if err != nil {
		return fmt.Errorf("config: secrets.master_key: %w", err)
	}
	cipher, err := subscription.NewCipher(key)
	if err != nil {
		return fmt.Errorf("config: secrets.master_key: %w", err)
	}
	a.store = subscription.NewStore(cfg.Kafka.Brokers, topics.Subscriptions(), cipher,
		subscription.WithLogger(log.Named("subscriptions")), subscription.WithClientOpts(kafka.SecurityOpts(cfg.Kafka)...))

	// The attempt path is built before the API, which sends test events
	// through it; none of it talks to Kafka or Redis until used.
	hist := history.New(a.rdb, history.WithLogger(log.Named("history")))
	outcomes := outcome.NewWriter(ocl, topics.Outcomes(), outcome.WithLogger(log.Named("outcomes")), outcome.WithHook(hist.Add))
	// Every delivery makes two Redis calls (lease, then done mark or
	// release), concurrently with thousands of others: the autopipeliner
	// sends the calls that meet in time as one pipeline, one write and one
	// read for all of them, instead of a round trip and a pooled connection
	// each. Its deferred face lets a done mark ride the next pipeline with
	// other deliveries' leases, without its caller waiting for the reply.
	pipelined, err := a.rdb.AsyncAutoPipeline()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	dedupeStore := dedupe.New(pipelined, dedupe.WithLogger(log.Named("dedupe")), dedupe.WithDoneTTL(cfg.Dedupe.DoneTTL))
	metrics, err := dispatch.NewMetrics(a.tel.Meter())
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	sender := delivery.NewClient(append(a.deliveryOptions(),
		delivery.WithTracerProvider(a.tel.TracerProvider()),
		delivery.WithPropagators(telemetry.Propagator()))...)
	schedule, err := retry.NewSchedule(tiers...)
	if err != nil {
		return fmt.Errorf("config: retry.tiers: %w", err)
	}
	retrier := retry.NewProducer(cl, schedule, retry.WithPrefix(cfg.Topics.Prefix))
	breaker := ratelimit.NewBreaker()
	breaker.OnChange(func(_ string, from, to ratelimit.State) { metrics.CircuitChanged(from.String(), to.String()) })
	attempter := &dispatch.Attempter{
		Send:        sender,
		Subs:        a.store,
		Outcomes:    outcomes,
		Retrier:     retrier,
		Dedupe:      dedupeStore,
		Limiter:     ratelimit.NewLimiter(a.rdb),
		Breaker:     breaker,
		MaxAttempts: cfg.Retry.MaxAttempts,
		Observe: dispatch.Observers(metrics.Observe, dispatch.TraceOutcome,
			dispatch.LogOutcomes(log.Named("delivery")), opts.Observe),
		Log: log.Named("delivery"),
	}
	// History is written until the end of the drain (deferred calls run
	// last in, first out: this stops after the API and the roles).
	histCtx, stopHist := context.WithCancel(context.Background())
	histDone := make(chan error, 1)
	go func() { histDone <- hist.Run(histCtx) }()
	defer func() { stopHist(); <-histDone }()

	deps := api.Deps{
		Store:       a.store,
		Metrics:     a.tel.MetricsHandler(),
		LogLevel:    a.tel.LevelHandler(),
		Ready:       a.readiness,
		Logger:      log.Named("api"),
		History:     hist,
		Circuits:    breaker,
		Tester:      &api.TestSender{Attempter: attempter},
		DeadLetters: &api.KafkaDLQ{Client: cl, Producer: retrier},
	}
	if src := a.sourceTopics(); len(src) > 0 {
		// POST /v1/events writes to the first source topic.
		deps.Ingest = ingest.NewProducer(cl, src[0], ingest.WithIdempotency(a.rdb, ingest.DefaultIdempotencyTTL))
	}
	apiHandler := api.New(api.Config{Tokens: cfg.API.Tokens, MaxBodyBytes: cfg.API.MaxBodyBytes}, deps)
	ln := opts.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.API.Listen)
		if err != nil {
			return fmt.Errorf("config: api.listen: %w", err)
		}
	}
	a.addr = ln.Addr().String()
	apiSrv = &http.Server{Handler: apiHandler, ReadHeaderTimeout: 10 * time.Second}
	go func() { apiErr <- apiSrv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = apiSrv.Shutdown(sctx)
	}()
	log.Info("admin API listening", zap.String("addr", a.addr))

	if err := kafka.WaitForBroker(ctx, cl, log); err != nil {
		return err
	}
	if err := a.ensureTopics(ctx, topics, tiers); err != nil {
		return err
	}

	var wg sync.WaitGroup
	roleCtx, stopRoles := context.WithCancel(context.Background())
	defer stopRoles()
	storeErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); storeErr <- a.store.Run(roleCtx) }()
	if err := a.waitStore(ctx, storeErr); err != nil {
		stopRoles()
		wg.Wait()
		return err
	}
	log.Info("subscriptions loaded", zap.Int("count", a.store.Len()))

	// Attempts wait for their responses on goroutines of their own, so
	// the dispatcher runs them as a Starter and needs no Handler.
	starter := dispatch.TracingStarter(a.tel.TracerProvider(), cfg.Kafka.Group, dispatch.WithRetryGroup(cfg.Kafka.RetryGroup))(dispatch.Flights(attempter.Begin))
	disp := dispatch.New(nil,
		dispatch.WithStarter(starter),
		dispatch.WithPreparer(attempter),
		dispatch.WithMaxPending(cfg.Delivery.MaxInFlight),
		dispatch.WithAdmission(nil),
		dispatch.WithRetrier(retrier),
		dispatch.WithLogger(log.Named("dispatch")))

	extractors := a.extractors()
	source, err := dispatch.NewSource(disp, a.store, dispatch.SourceConfig{
		Extract: func(r *kgo.Record) (event.Event, error) {
			x := extractors[r.Topic]
			return x.FromRecord(r)
		},
		Reject: func(ctx context.Context, ev *event.Event, subs []*subscription.Subscription, why error) {
			for _, sub := range subs {
				outcomes.Write(ctx, &outcome.Record{
					DeliveryID: event.DeliveryID(ev.ID, sub.ID), EventID: ev.ID, EventType: ev.Type,
					SubscriptionID: sub.ID, Topic: ev.Topic, Partition: ev.Partition, Offset: ev.Offset,
					Attempt: 1, State: outcome.Rejected, Error: why.Error(), AttemptedAt: time.Now(),
				})
			}
		},
		Logger: log.Named("source"),
	}, append(kafka.ConsumerOpts(cfg.Kafka),
		kgo.WithLogger(kafka.Logger(log.Named("kafka"))),
		kgo.ConsumerGroup(cfg.Kafka.Group),
		// A compressed batch may not decompress to more than this: a
		// compression bomb is rejected, not held in memory.
		kgo.MaxDecompressBatchBytes(max(32<<20, 16*cfg.Delivery.MaxEventBytes)),
		kgo.ConsumeTopics(a.sourceTopics()...))...)
	if err != nil {
		return fmt.Errorf("source consumer: %w", err)
	}
	retryConsumer, err := retry.NewConsumer(retry.ConsumerConfig{
		ClientOpts:    append(kafka.ConsumerOpts(cfg.Kafka), kgo.WithLogger(kafka.Logger(log.Named("kafka")))),
		Group:         cfg.Kafka.RetryGroup,
		Prefix:        cfg.Topics.Prefix,
		Schedule:      schedule,
		Submitter:     disp,
		Subscriptions: a.store,
		Producer:      retrier,
		Outcomes:      outcomes,
		Logger:        log.Named("retry"),
	})
	if err != nil {
		return fmt.Errorf("retry consumer: %w", err)
	}

	gauges, err := metrics.RegisterGauges(dispatch.Gauges{
		Dispatcher:    disp.Stats,
		Subscriptions: a.store.Len,
		RedisErrors:   dedupeStore.Errors,
		OutcomeErrors: outcomes.Errors,
		RetryTiers: func() []dispatch.TierDepth {
			var out []dispatch.TierDepth
			for _, s := range retryConsumer.Stats() {
				out = append(out, dispatch.TierDepth{Tier: retry.FormatTier(s.Tier), Waiting: s.Queued, InFlight: s.InFlight})
			}
			return out
		},
		Lag: dispatch.KafkaLag(a.adm, cfg.Kafka.Group, cfg.Kafka.RetryGroup),
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer func() { _ = gauges.Unregister() }()

	sourceDone := make(chan error, 1)
	retryDone := make(chan error, 1)
	go func() { sourceDone <- source.Run(roleCtx) }()
	go func() { retryDone <- retryConsumer.Run(roleCtx) }()
	a.ready.Store(true)
	log.Info("herald is ready", zap.Strings("sources", a.sourceTopics()), zap.String("api", a.addr))
	if opts.OnReady != nil {
		opts.OnReady(a)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-apiErr:
		runErr = fmt.Errorf("admin API: %w", err)
	case err := <-storeErr:
		runErr = fmt.Errorf("subscription store: %w", err)
	}

	// Drain in order: stop fetching and finish or hand off what started,
	// commit, then flush what herald produced.
	a.ready.Store(false)
	log.Info("draining")
	stopRoles()
	<-sourceDone
	<-retryDone
	dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := disp.Close(dctx); err != nil {
		log.Warn("dispatcher drain timed out", zap.Error(err))
	}
	// No request is in flight any more: leave no kept-alive connection
	// behind (herald may run inside a longer-lived process).
	sender.CloseIdleConnections()
	if err := dedupeStore.Flush(dctx); err != nil {
		log.Warn("flushing done marks", zap.Error(err))
	}
	if err := outcomes.Flush(dctx); err != nil {
		log.Warn("flushing outcomes", zap.Error(err))
	}
	if err := cl.Flush(dctx); err != nil {
		log.Warn("flushing producer", zap.Error(err))
	}
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// newOutcomeClient is the producer of outcome records, apart from the
// client of retry hand-offs and dead letters so that it can linger longer
// (kafka.OutcomeLinger): one outcome per attempt is the largest stream
// herald writes, and nothing waits for it.
func newOutcomeClient(cfg config.Kafka, log *zap.Logger, topic string) (*kgo.Client, error) {
	return kafka.NewClient(cfg, log, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(kafka.OutcomeLinger),
		kgo.WithHooks(telemetry.TraceHeaders{}))
}

// readiness says why the instance cannot serve yet, nil when it can.
func (a *App) readiness(context.Context) error {
	switch {
	case a.store == nil || !a.store.Ready():
		return errors.New("subscriptions are still loading")
	case !a.ready.Load():
		return errors.New("starting or draining")
	}
	return nil
}

func (a *App) waitStore(ctx context.Context, storeErr <-chan error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- a.store.WaitReady(wctx) }()
	select {
	case err := <-ready:
		return err
	case err := <-storeErr:
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return fmt.Errorf("subscription store: %w", err)
	}
}

func (a *App) ensureTopics(ctx context.Context, topics kafka.Topics, tiers []time.Duration) error {
	cfg := a.cfg
	if !cfg.Topics.Create {
		names := []string{topics.Subscriptions(), topics.Outcomes(), topics.DLQ()}
		for _, t := range tiers {
			names = append(names, topics.Retry(t))
		}
		missing, err := kafka.TopicsExist(ctx, a.adm, names...)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fmt.Errorf("topics missing and topics.create is false: %v (run `herald topics create`)", missing)
		}
		return nil
	}
	if err := subscription.EnsureTopic(ctx, a.adm, topics.Subscriptions()); err != nil {
		return fmt.Errorf("creating %s: %w", topics.Subscriptions(), err)
	}
	if err := outcome.EnsureTopic(ctx, a.adm, topics.Outcomes(), int32(cfg.Topics.Partitions)); err != nil {
		return fmt.Errorf("creating %s: %w", topics.Outcomes(), err)
	}
	if err := retry.EnsureTopics(ctx, a.adm, cfg.Topics.Prefix, tiers, int32(cfg.Topics.Partitions)); err != nil {
		return fmt.Errorf("creating retry topics: %w", err)
	}
	return nil
}

func (a *App) deliveryOptions() []delivery.Option {
	d := a.cfg.Delivery
	// Many subscriptions often share a host (one platform, many tenants):
	// keep as many idle connections per host as deliveries may be in
	// flight, or every request past 64 closes its connection and the next
	// one dials again.
	opts := []delivery.Option{delivery.AllowPrivateNetworks(d.AllowPrivateNetworks), delivery.MaxIdleConnsPerHost(d.MaxInFlight)}
	for _, c := range d.AllowCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			opts = append(opts, delivery.AllowCIDRs(p))
		}
	}
	if d.UserAgent != "" {
		opts = append(opts, delivery.WithUserAgent(d.UserAgent))
	}
	return opts
}

func (a *App) sourceTopics() []string {
	out := make([]string, 0, len(a.cfg.Sources))
	for _, s := range a.cfg.Sources {
		out = append(out, s.Topic)
	}
	return out
}

func (a *App) extractors() map[string]*event.Extractor {
	m := make(map[string]*event.Extractor, len(a.cfg.Sources))
	for _, s := range a.cfg.Sources {
		m[s.Topic] = &event.Extractor{
			IDHeader: s.IDHeader, IDField: s.IDField,
			TypeHeader: s.TypeHeader, TypeField: s.TypeField,
			MaxValueBytes: a.cfg.Delivery.MaxEventBytes,
		}
	}
	return m
}

// CreateTopics creates herald's own topics as the configuration names them,
// whatever topics.create says, and returns their names.
func CreateTopics(ctx context.Context, cfg config.Config) ([]string, error) {
	log := zap.NewNop()
	cl, err := kafka.NewClient(cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	a := &App{cfg: cfg, log: log, client: cl, adm: kadm.NewClient(cl)}
	a.cfg.Topics.Create = true
	topics := kafka.Topics{Prefix: cfg.Topics.Prefix}
	tiers := []time.Duration(cfg.Retry.Tiers)
	if err := a.ensureTopics(ctx, topics, tiers); err != nil {
		return nil, err
	}
	names := []string{topics.Subscriptions(), topics.Outcomes(), topics.DLQ()}
	for _, t := range tiers {
		names = append(names, topics.Retry(t))
	}
	return names, nil
}

// redisOptions are the client options for the Redis at url.
func redisOptions(url string) (*redis.Options, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("config: redis.url: %w", err)
	}
	// Fail fast when Redis is away: deliveries go on without dedupe (and
	// count it) rather than wait on a retried dial for every call.
	o.DialTimeout = 500 * time.Millisecond
	o.ReadTimeout = time.Second
	o.WriteTimeout = time.Second
	o.MaxRetries = 1
	o.DialerRetries = 1
	// RESP2 unless the URL asks for ?protocol=3: herald uses no push
	// notification, and over RESP3 the client looks for them before every
	// reply it reads, two of which every delivery waits for.
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	return o, nil
}
