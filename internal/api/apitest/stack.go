// Package apitest runs a whole herald in process for tests of the admin
// API, the dashboard and ingest: the subscription store, the dispatcher on
// a source topic, retry tiers and the dead-letter queue, attempt history,
// test sends, ingest and the API server, on testkit's Kafka and Redis. It
// is wired as internal/app wires them.
package apitest

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/herald-dev/herald/internal/api"
	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/dedupe"
	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/history"
	"github.com/herald-dev/herald/internal/ingest"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/ratelimit"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
)

// Token is the API token of every Stack.
const Token = "apitest-token-0123456789abcdef"

// Stack is one running herald.
type Stack struct {
	// URL is the API's base address, e.g. http://127.0.0.1:PORT.
	URL    string
	Client *apiclient.Client
	// Source is the source topic, which is also the ingest topic.
	Source  string
	Brokers []string
	Store   *subscription.Store
	History *history.Store
	Breaker *ratelimit.Breaker
	// Producer writes to the retry tiers and the dead-letter queue.
	Producer *retry.Producer
}

// Options change a Stack.
type Options struct {
	// Tiers are the retry delays. Default 200ms, 500ms.
	Tiers []time.Duration
	// MaxAttempts per delivery. Default 3.
	MaxAttempts int
	// Logger, default the test's at info level.
	Logger *zap.Logger
}

// Start runs a Stack until the test ends.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	if o.Tiers == nil {
		o.Tiers = []time.Duration{200 * time.Millisecond, 500 * time.Millisecond}
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	log := o.Logger
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	brokers := testkit.Kafka(t)
	prefix := testkit.TopicPrefix(t)
	source := testkit.Topic(t, "orders")
	testkit.CreateTopic(t, brokers, source, 3)
	outcomes := prefix + "outcomes"

	cl := testkit.Client(t, brokers, kgo.DefaultProduceTopic(outcomes), kgo.ProducerLinger(5*time.Millisecond))
	adm := kadm.NewClient(cl)
	if err := subscription.EnsureTopic(ctx, adm, prefix+"subscriptions"); err != nil {
		t.Fatal(err)
	}
	if err := outcome.EnsureTopic(ctx, adm, outcomes, 3); err != nil {
		t.Fatal(err)
	}
	if err := retry.EnsureTopics(ctx, adm, prefix, o.Tiers, 3); err != nil {
		t.Fatal(err)
	}

	ropts, err := redis.ParseURL(testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropts)

	key := make([]byte, subscription.MasterKeySize)
	_, _ = rand.Read(key)
	cipher, err := subscription.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	store := subscription.NewStore(brokers, prefix+"subscriptions", cipher, subscription.WithLogger(log.Named("subscriptions")))

	hist := history.New(rdb, history.WithFlushEvery(20*time.Millisecond), history.WithLogger(log.Named("history")))
	writer := outcome.NewWriter(cl, outcomes, outcome.WithHook(hist.Add), outcome.WithLogger(log.Named("outcomes")))
	breaker := ratelimit.NewBreaker()
	sender := delivery.NewClient(delivery.AllowPrivateNetworks(true))
	schedule, err := retry.NewSchedule(o.Tiers...)
	if err != nil {
		t.Fatal(err)
	}
	producer := retry.NewProducer(cl, schedule, retry.WithPrefix(prefix))
	attempter := &dispatch.Attempter{
		Send:        sender,
		Subs:        store,
		Outcomes:    writer,
		Retrier:     producer,
		Dedupe:      dedupe.New(rdb),
		Limiter:     ratelimit.NewLimiter(rdb),
		Breaker:     breaker,
		MaxAttempts: o.MaxAttempts,
		Log:         log.Named("delivery"),
	}
	disp := dispatch.New(attempter.Handle, dispatch.WithRetrier(producer), dispatch.WithLogger(log.Named("dispatch")))
	extractor := &event.Extractor{}
	src, err := dispatch.NewSource(disp, store, dispatch.SourceConfig{
		Extract: extractor.FromRecord,
		Logger:  log.Named("source"),
	}, kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(testkit.Unique(t, "group")), kgo.ConsumeTopics(source),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	retryConsumer, err := retry.NewConsumer(retry.ConsumerConfig{
		ClientOpts:    []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.FetchMaxWait(100 * time.Millisecond)},
		Group:         testkit.Unique(t, "retry"),
		Prefix:        prefix,
		Schedule:      schedule,
		Submitter:     disp,
		Subscriptions: store,
		Producer:      producer,
		Outcomes:      writer,
		Logger:        log.Named("retry"),
	})
	if err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	histDone := make(chan error, 1)
	srcDone := make(chan error, 1)
	retryDone := make(chan error, 1)
	go func() { storeDone <- store.Run(runCtx) }()
	go func() { histDone <- hist.Run(runCtx) }()
	if err := store.WaitReady(ctx); err != nil {
		stop()
		t.Fatalf("subscriptions not ready: %v", err)
	}
	rolesCtx, stopRoles := context.WithCancel(context.Background())
	go func() { srcDone <- src.Run(rolesCtx) }()
	go func() { retryDone <- retryConsumer.Run(rolesCtx) }()

	srv := httptest.NewServer(api.New(api.Config{Tokens: []string{Token}}, api.Deps{
		Store:       store,
		Logger:      log.Named("api"),
		History:     hist,
		Circuits:    breaker,
		Tester:      &api.TestSender{Attempter: attempter},
		DeadLetters: &api.KafkaDLQ{Client: testkit.Client(t, brokers), Producer: producer},
		Ingest:      ingest.NewProducer(cl, source, ingest.WithIdempotency(rdb, ingest.DefaultIdempotencyTTL)),
	}))

	// Drain in app.Run's order: the API, the consumers, in-flight
	// deliveries, produced records, then history and the store.
	t.Cleanup(func() {
		srv.Close()
		stopRoles()
		for _, ch := range []chan error{srcDone, retryDone} {
			if err := <-ch; err != nil {
				t.Errorf("apitest: consumer: %v", err)
			}
		}
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := disp.Close(dctx); err != nil {
			t.Errorf("apitest: dispatcher drain: %v", err)
		}
		_ = writer.Flush(dctx)
		stop()
		<-histDone
		<-storeDone
		sender.CloseIdleConnections()
		rdb.Close()
	})
	return &Stack{
		URL:      srv.URL,
		Client:   apiclient.New(srv.URL, Token, apiclient.WithHTTPClient(srv.Client())),
		Source:   source,
		Brokers:  brokers,
		Store:    store,
		History:  hist,
		Breaker:  breaker,
		Producer: producer,
	}
}
