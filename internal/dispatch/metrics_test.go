package dispatch_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zapcore"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/telemetry"
)

func newTelemetry(t *testing.T) *telemetry.Telemetry {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{LogOutput: zapcore.AddSync(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// scraped is /metrics parsed.
type scraped map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, h http.Handler) scraped {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rr.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rr.Body.String()))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, rr.Body)
	}
	return fams
}

// value is the sample of family name whose labels include want; ok is false
// when there is none. Histograms give their count.
func (s scraped) value(name string, want map[string]string) (float64, bool) {
	fam := s[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func (s scraped) expect(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := s.value(name, labels)
	if !ok {
		t.Errorf("%s%v missing", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestMetricsObserve(t *testing.T) {
	tel := newTelemetry(t)
	m, err := dispatch.NewMetrics(tel.Meter(), dispatch.WithSubscriptionLabels(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j := &dispatch.Job{}
	for _, r := range []*outcome.Record{
		{SubscriptionID: "sub_a", State: outcome.Delivered, HTTPStatus: 200, LatencyMS: 12},
		{SubscriptionID: "sub_a", State: outcome.Delivered, HTTPStatus: 204, LatencyMS: 3},
		{SubscriptionID: "sub_a", State: outcome.Failed, HTTPStatus: 500, LatencyMS: 40},
		{SubscriptionID: "sub_a", State: outcome.Failed, Error: "connection refused", LatencyMS: 1},
		{SubscriptionID: "sub_a", State: outcome.Failed, Error: "delivery: no signing key"}, // never sent
		{SubscriptionID: "sub_a", State: outcome.DeadLettered, Error: "attempts_exhausted: HTTP 500", HTTPStatus: 500},
		{SubscriptionID: "sub_a", State: outcome.Alert, Error: "delivery dead-lettered: attempts_exhausted"},
		{SubscriptionID: "sub_b", State: outcome.Duplicate},
		{SubscriptionID: "sub_b", State: outcome.Parked, Error: "circuit open"},
		{SubscriptionID: "sub_c", State: outcome.Parked, Error: "rate limited"},
	} {
		m.Observe(ctx, j, r)
	}
	m.CircuitChanged("closed", "open")
	m.CircuitChanged("closed", "open")
	m.CircuitChanged("open", "half_open")

	s := scrapeMetrics(t, tel.MetricsHandler())
	s.expect(t, "herald_deliveries_total", map[string]string{"outcome": "delivered", "subscription": "sub_a"}, 2)
	s.expect(t, "herald_deliveries_total", map[string]string{"outcome": "failed", "subscription": "sub_a"}, 3)
	s.expect(t, "herald_deliveries_total", map[string]string{"outcome": "dead_lettered", "subscription": "sub_a"}, 1)
	s.expect(t, "herald_deliveries_total", map[string]string{"outcome": "duplicate", "subscription": dispatch.OtherSubscriptions}, 1)
	s.expect(t, "herald_deliveries_total", map[string]string{"outcome": "parked", "subscription": dispatch.OtherSubscriptions}, 2)
	if _, ok := s.value("herald_deliveries_total", map[string]string{"outcome": "alert"}); ok {
		t.Error("alerts are counted as deliveries")
	}
	if _, ok := s.value("herald_deliveries_total", map[string]string{"subscription": "sub_b"}); ok {
		t.Error("a second subscription got its own label past the limit of 1")
	}
	s.expect(t, "herald_attempt_duration_seconds", map[string]string{"status_class": "2xx"}, 2)
	s.expect(t, "herald_attempt_duration_seconds", map[string]string{"status_class": "5xx"}, 1)
	s.expect(t, "herald_attempt_duration_seconds", map[string]string{"status_class": "error"}, 1)
	s.expect(t, "herald_dead_letters_total", map[string]string{"reason": "attempts_exhausted"}, 1)
	s.expect(t, "herald_dead_letters_total", map[string]string{"reason": "gone"}, 0)
	s.expect(t, "herald_dedupe_hits_total", nil, 1)
	s.expect(t, "herald_deliveries_parked_total", map[string]string{"reason": "circuit_open"}, 1)
	s.expect(t, "herald_deliveries_parked_total", map[string]string{"reason": "rate_limited"}, 1)
	s.expect(t, "herald_circuits", map[string]string{"state": "open"}, 1)
	s.expect(t, "herald_circuits", map[string]string{"state": "half_open"}, 1)

	// Sum of the 2xx durations: 12ms + 3ms.
	for _, mt := range s["herald_attempt_duration_seconds"].Metric {
		for _, l := range mt.Label {
			if l.GetName() == "status_class" && l.GetValue() == "2xx" {
				if got := mt.Histogram.GetSampleSum(); got < 0.0149 || got > 0.0151 {
					t.Errorf("2xx duration sum %v, want 0.015", got)
				}
			}
		}
	}
}

func TestMetricsGauges(t *testing.T) {
	tel := newTelemetry(t)
	m, err := dispatch.NewMetrics(tel.Meter())
	if err != nil {
		t.Fatal(err)
	}
	lagCalls := 0
	reg, err := m.RegisterGauges(dispatch.Gauges{
		Dispatcher:    func() dispatch.Stats { return dispatch.Stats{Running: 4, Queued: 7, Parked: 2, AdmitLimit: 256} },
		Subscriptions: func() int { return 12 },
		RedisErrors:   func() uint64 { return 3 },
		OutcomeErrors: func() uint64 { return 1 },
		RetryTiers: func() []dispatch.TierDepth {
			return []dispatch.TierDepth{{Tier: "10s", Waiting: 5, InFlight: 1}, {Tier: "1m"}}
		},
		Lag: func(context.Context) ([]dispatch.PartitionLag, error) {
			lagCalls++
			return []dispatch.PartitionLag{{Group: "herald", Topic: "orders", Partition: 2, Lag: 9}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reg.Unregister() }()
	m.Observe(context.Background(), &dispatch.Job{}, &outcome.Record{SubscriptionID: "s", State: outcome.Parked, Error: "subscription paused"})

	s := scrapeMetrics(t, tel.MetricsHandler())
	s.expect(t, "herald_deliveries_in_flight", nil, 4)
	s.expect(t, "herald_deliveries_queued", nil, 7)
	s.expect(t, "herald_deliveries_admit_limit", nil, 256)
	s.expect(t, "herald_deliveries_parked_total", map[string]string{"reason": "saturated"}, 2)
	s.expect(t, "herald_deliveries_parked_total", map[string]string{"reason": "paused"}, 1)
	s.expect(t, "herald_subscriptions", nil, 12)
	s.expect(t, "herald_redis_errors_total", nil, 3)
	s.expect(t, "herald_outcome_errors_total", nil, 1)
	s.expect(t, "herald_retry_tier_depth", map[string]string{"tier": "10s", "state": "waiting"}, 5)
	s.expect(t, "herald_retry_tier_depth", map[string]string{"tier": "10s", "state": "in_flight"}, 1)
	s.expect(t, "herald_retry_tier_depth", map[string]string{"tier": "1m", "state": "waiting"}, 0)
	s.expect(t, "herald_consumer_lag", map[string]string{"group": "herald", "topic": "orders", "partition": "2"}, 9)

	// A second scrape right away does not ask the brokers again.
	scrapeMetrics(t, tel.MetricsHandler())
	if lagCalls != 1 {
		t.Errorf("lag asked %d times for two scrapes, want 1", lagCalls)
	}
}

// TestKafkaLag runs KafkaLag against an embedded cluster: a group that
// committed 2 of 5 records is 3 behind.
func TestKafkaLag(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	offs.AddOffset("orders", 0, 2, -1)
	if _, err := adm.CommitOffsets(ctx, "herald", offs); err != nil {
		t.Fatal(err)
	}
	lags, err := dispatch.KafkaLag(adm, "herald")(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := dispatch.PartitionLag{Group: "herald", Topic: "orders", Partition: 0, Lag: 3}
	if len(lags) != 1 || lags[0] != want {
		t.Fatalf("lag %+v, want %+v", lags, want)
	}
}
