package dispatch

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-dev/herald/internal/outcome"
)

// DefaultSubscriptionLabels is how many subscriptions get their own value of
// the subscription label; see WithSubscriptionLabels.
const DefaultSubscriptionLabels = 50

// OtherSubscriptions is the subscription label of every subscription past
// the labelled ones.
const OtherSubscriptions = "_other"

// Metrics records the delivery path as OpenTelemetry instruments. Their
// Prometheus names (OTel names with dots as underscores, counters ending in
// _total, units as suffixes):
//
//	herald_deliveries_total{outcome,subscription}   one per outcome record (not alerts)
//	herald_attempt_duration_seconds{status_class}   HTTP attempts: 2xx, 3xx, 4xx, 5xx, error
//	herald_deliveries_parked_total{reason}          paused, circuit_open, rate_limited, in_flight, saturated
//	herald_dead_letters_total{reason}               attempts_exhausted, non_retryable, gone, aborted
//	herald_dedupe_hits_total                        deliveries skipped as already done
//	herald_circuits{state}                          subscriptions whose circuit is open or half_open
//
// and, once RegisterGauges has the functions to read them, in flight,
// queued, Redis and outcome errors, retry tier depth, consumer lag and the
// number of subscriptions.
//
// The subscription label is bounded: the first n distinct subscriptions this
// instance records (WithSubscriptionLabels, default 50) are labelled with
// their id, every later one with "_other", so a fleet of thousands of
// subscriptions cannot blow up the series count. The admin API has exact
// per-subscription counters.
type Metrics struct {
	meter      metric.Meter
	deliveries metric.Int64Counter
	duration   metric.Float64Histogram
	deadLetter metric.Int64Counter
	dedupeHits metric.Int64Counter
	parkedObs  metric.Int64ObservableCounter

	labels subscriptionLabels
	// attrs caches the attribute sets of deliveries (outcome × subscription
	// label) and of durations (status class): both are bounded, and building
	// a set for every attempt was a good part of recording it.
	attrs sync.Map // attrKey → metric.MeasurementOption

	parkedMu sync.Mutex
	parked   map[string]int64

	open, halfOpen atomic.Int64
}

// MetricsOption configures Metrics.
type MetricsOption func(*Metrics)

// WithSubscriptionLabels sets how many subscriptions get their own value of
// the subscription label. 0 labels every one "_other". Default 50.
func WithSubscriptionLabels(n int) MetricsOption {
	return func(m *Metrics) { m.labels.max = max(n, 0) }
}

// NewMetrics creates the instruments on meter.
func NewMetrics(meter metric.Meter, opts ...MetricsOption) (*Metrics, error) {
	m := &Metrics{
		meter:  meter,
		labels: subscriptionLabels{max: DefaultSubscriptionLabels, seen: map[string]struct{}{}},
		parked: map[string]int64{},
	}
	for _, o := range opts {
		o(m)
	}
	var errs [7]error
	m.deliveries, errs[0] = meter.Int64Counter("herald.deliveries", metric.WithUnit("{delivery}"),
		metric.WithDescription("Outcome records by state: one per attempt and per final state."))
	m.duration, errs[1] = meter.Float64Histogram("herald.attempt.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP delivery attempts, from sending the request to reading the response."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	m.deadLetter, errs[2] = meter.Int64Counter("herald.dead_letters", metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries sent to the dead-letter topic, by reason."))
	m.dedupeHits, errs[3] = meter.Int64Counter("herald.dedupe.hits", metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries skipped because Redis marks them done."))
	parked, err := meter.Int64ObservableCounter("herald.deliveries.parked", metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries moved to a retry tier without spending an attempt, by reason."))
	errs[4] = err
	circuits, err := meter.Int64ObservableGauge("herald.circuits", metric.WithUnit("{subscription}"),
		metric.WithDescription("Subscriptions whose circuit breaker is open or half-open on this instance."))
	errs[5] = err
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	m.parkedObs = parked
	// Series that alerts are written against exist from the start, at 0.
	ctx := context.Background()
	m.dedupeHits.Add(ctx, 0)
	for _, reason := range deadLetterReasons {
		m.deadLetter.Add(ctx, 0, metric.WithAttributes(attribute.String("reason", reason)))
	}
	_, errs[6] = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.parkedMu.Lock()
		for reason, n := range m.parked {
			o.ObserveInt64(parked, n, metric.WithAttributes(attribute.String("reason", reason)))
		}
		m.parkedMu.Unlock()
		o.ObserveInt64(circuits, m.open.Load(), metric.WithAttributes(attribute.String("state", "open")))
		o.ObserveInt64(circuits, m.halfOpen.Load(), metric.WithAttributes(attribute.String("state", "half_open")))
		return nil
	}, parked, circuits)
	if errs[6] != nil {
		return nil, errs[6]
	}
	return m, nil
}

// Observe records one outcome record. It has Attempter.Observe's signature.
func (m *Metrics) Observe(ctx context.Context, j *Job, r *outcome.Record) {
	switch r.State {
	case outcome.Alert:
		// Says again that a delivery was dead-lettered; counted there.
		return
	case outcome.Parked:
		m.addParked(parkReason(r.Error), 1)
	case outcome.DeadLettered:
		m.deadLetter.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", deadLetterReason(r.Error))))
	case outcome.Duplicate:
		m.dedupeHits.Add(ctx, 1)
	}
	m.deliveries.Add(ctx, 1, m.attrSet(attrKey{"outcome", string(r.State), "subscription", m.labels.label(r.SubscriptionID)}))
	if attempted(r) {
		m.duration.Record(ctx, r.LatencyMS/1000, m.attrSet(attrKey{k1: "status_class", v1: statusClass(r.HTTPStatus)}))
	}
}

// attrKey names an attribute set of at most two attributes.
type attrKey struct{ k1, v1, k2, v2 string }

func (m *Metrics) attrSet(k attrKey) metric.MeasurementOption {
	if o, ok := m.attrs.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{attribute.String(k.k1, k.v1)}
	if k.k2 != "" {
		kvs = append(kvs, attribute.String(k.k2, k.v2))
	}
	o, _ := m.attrs.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return o.(metric.MeasurementOption)
}

// CircuitChanged follows a circuit breaker's transitions ("closed", "open",
// "half_open"), for herald_circuits: pass it to the breaker's OnChange.
func (m *Metrics) CircuitChanged(from, to string) {
	m.circuitAdd(from, -1)
	m.circuitAdd(to, 1)
}

func (m *Metrics) circuitAdd(state string, n int64) {
	switch state {
	case "open":
		m.open.Add(n)
	case "half_open":
		m.halfOpen.Add(n)
	}
}

func (m *Metrics) addParked(reason string, n int64) {
	m.parkedMu.Lock()
	m.parked[reason] += n
	m.parkedMu.Unlock()
}

// TierDepth is how many records of one retry tier this instance holds.
type TierDepth struct {
	Tier string // "10s", "1m", …
	// Waiting records were read and wait for their due time; InFlight ones
	// were handed to the dispatcher and are not finished.
	Waiting, InFlight int64
}

// PartitionLag is how far a consumer group is behind on one partition.
type PartitionLag struct {
	Group     string
	Topic     string
	Partition int32
	Lag       int64
}

// Gauges are the functions RegisterGauges reads at every collection. Each
// is optional.
type Gauges struct {
	// Dispatcher reports in flight and queued deliveries, and deliveries
	// parked because their endpoint's queue was full: (*Dispatcher).Stats.
	Dispatcher func() Stats
	// Subscriptions counts the loaded subscriptions: (*subscription.Store).Len.
	Subscriptions func() int
	// RedisErrors counts failed dedupe calls: (*dedupe.Store).Errors.
	RedisErrors func() uint64
	// OutcomeErrors counts lost outcome records: (*outcome.Writer).Errors.
	OutcomeErrors func() uint64
	// RetryTiers reports each tier's depth, from (*retry.Consumer).Stats.
	RetryTiers func() []TierDepth
	// Lag reports consumer lag per partition: KafkaLag.
	Lag func(context.Context) ([]PartitionLag, error)
}

// lagTimeout bounds one lag query during a scrape.
const lagTimeout = 5 * time.Second

// RegisterGauges adds the instruments read from g:
//
//	herald_deliveries_in_flight, herald_deliveries_queued
//	herald_deliveries_admit_limit
//	herald_deliveries_parked_total{reason="saturated"}
//	herald_subscriptions
//	herald_redis_errors_total, herald_outcome_errors_total
//	herald_retry_tier_depth{tier,state="waiting"|"in_flight"}
//	herald_consumer_lag{group,topic,partition}
//
// Unregister the result to stop reading g.
func (m *Metrics) RegisterGauges(g Gauges) (metric.Registration, error) {
	mt := m.meter
	var errs []error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		i, err := mt.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return i
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		i, err := mt.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return i
	}
	inFlight := gauge("herald.deliveries.in_flight", "{delivery}", "Delivery attempts running now.")
	queued := gauge("herald.deliveries.queued", "{delivery}", "Deliveries waiting for their endpoint's turn.")
	admitLimit := gauge("herald.deliveries.admit_limit", "{delivery}", "Deliveries taken on at once: delivery.max_in_flight, or fewer while the process is short of CPU.")
	subs := gauge("herald.subscriptions", "{subscription}", "Subscriptions loaded on this instance.")
	redisErrs := counter("herald.redis.errors", "{error}", "Dedupe calls to Redis that failed; deliveries went ahead without dedupe.")
	outcomeErrs := counter("herald.outcome.errors", "{record}", "Outcome records lost: not encodable, not buffered or not acknowledged.")
	depth := gauge("herald.retry.tier.depth", "{delivery}", "Retry records this instance has read from a tier and not finished.")
	lag := gauge("herald.consumer.lag", "{record}", "Records of a partition not yet committed by a consumer group.")
	parked := m.parkedObs
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	lags := &lagCache{fn: g.Lag}
	return mt.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if g.Dispatcher != nil {
			s := g.Dispatcher()
			o.ObserveInt64(inFlight, s.Running)
			o.ObserveInt64(queued, s.Queued)
			if s.AdmitLimit > 0 {
				o.ObserveInt64(admitLimit, s.AdmitLimit)
			}
			o.ObserveInt64(parked, s.Parked, metric.WithAttributes(attribute.String("reason", "saturated")))
		}
		if g.Subscriptions != nil {
			o.ObserveInt64(subs, int64(g.Subscriptions()))
		}
		if g.RedisErrors != nil {
			o.ObserveInt64(redisErrs, int64(g.RedisErrors()))
		}
		if g.OutcomeErrors != nil {
			o.ObserveInt64(outcomeErrs, int64(g.OutcomeErrors()))
		}
		if g.RetryTiers != nil {
			for _, t := range g.RetryTiers() {
				o.ObserveInt64(depth, t.Waiting, metric.WithAttributes(attribute.String("tier", t.Tier), attribute.String("state", "waiting")))
				o.ObserveInt64(depth, t.InFlight, metric.WithAttributes(attribute.String("tier", t.Tier), attribute.String("state", "in_flight")))
			}
		}
		if g.Lag != nil {
			for _, l := range lags.get(ctx) {
				o.ObserveInt64(lag, l.Lag, metric.WithAttributes(attribute.String("group", l.Group),
					attribute.String("topic", l.Topic), attribute.String("partition", strconv.Itoa(int(l.Partition)))))
			}
		}
		return nil
	}, inFlight, queued, admitLimit, parked, subs, redisErrs, outcomeErrs, depth, lag)
}

// lagCache asks the brokers for lag at most every lagInterval, however
// often /metrics is scraped, and keeps the last answer when a query fails.
type lagCache struct {
	fn   func(context.Context) ([]PartitionLag, error)
	mu   sync.Mutex
	at   time.Time
	last []PartitionLag
}

const lagInterval = 10 * time.Second

func (c *lagCache) get(ctx context.Context) []PartitionLag {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < lagInterval {
		return c.last
	}
	ctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()
	if lags, err := c.fn(ctx); err == nil {
		c.last = lags
	}
	c.at = time.Now()
	return c.last
}

// KafkaLag returns a Gauges.Lag that asks the brokers for the committed lag
// of groups on every partition they consume. Partitions whose lag is
// unknown (no commit yet, or an error) are left out.
func KafkaLag(adm *kadm.Client, groups ...string) func(context.Context) ([]PartitionLag, error) {
	return func(ctx context.Context) ([]PartitionLag, error) {
		described, err := adm.Lag(ctx, groups...)
		if err != nil {
			return nil, err
		}
		var out []PartitionLag
		for _, g := range described.Sorted() {
			for topic, parts := range g.Lag {
				for p, l := range parts {
					if l.Err != nil || l.Lag < 0 {
						continue
					}
					out = append(out, PartitionLag{Group: g.Group, Topic: topic, Partition: p, Lag: l.Lag})
				}
			}
		}
		return out, nil
	}
}

// subscriptionLabels hands out the subscription label values.
type subscriptionLabels struct {
	max  int
	mu   sync.Mutex
	seen map[string]struct{}
}

func (s *subscriptionLabels) label(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[id]; ok {
		return id
	}
	if len(s.seen) < s.max && id != "" {
		s.seen[id] = struct{}{}
		return id
	}
	return OtherSubscriptions
}

// attempted says whether r reports an HTTP attempt: a state the attempt
// path gives a sent request, with a status or a measured latency. A dead
// letter repeats the status of the attempt it follows; it is not one.
func attempted(r *outcome.Record) bool {
	switch r.State {
	case outcome.Delivered, outcome.Failed, outcome.Disabled, outcome.Aborted:
		return r.HTTPStatus > 0 || r.LatencyMS > 0
	}
	return false
}

// parkReason maps the attempt path's reasons for parking to label values.
func parkReason(why string) string {
	switch why {
	case "subscription paused":
		return "paused"
	case "circuit open":
		return "circuit_open"
	case "rate limited":
		return "rate_limited"
	case "another attempt is in flight":
		return "in_flight"
	case "endpoint saturated":
		return "saturated"
	}
	return "other"
}

var deadLetterReasons = []string{"attempts_exhausted", "non_retryable", "gone", "aborted"}

// deadLetterReason reads the reason from a dead_lettered record's error,
// "<reason>: <last error>".
func deadLetterReason(errText string) string {
	reason, _, _ := strings.Cut(errText, ":")
	for _, r := range deadLetterReasons {
		if r == reason {
			return reason
		}
	}
	return "other"
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}
	return statusClasses[status/100-1]
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
