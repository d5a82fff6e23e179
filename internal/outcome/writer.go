package outcome

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Writer produces outcome records. Deliveries never wait on the broker:
// records are produced asynchronously and batched by the client's linger;
// when the client's buffer is full a record is dropped and counted instead.
type Writer struct {
	cl      *kgo.Client
	topic   string
	log     *zap.Logger
	now     func() time.Time
	hooks   []func(*Record)
	errs    atomic.Uint64
	promise func(*kgo.Record, error)
}

// Option configures a Writer.
type Option func(*Writer)

// WithLogger sets the logger for produce failures, logged at most once a
// minute. Default: no logging.
func WithLogger(l *zap.Logger) Option { return func(w *Writer) { w.log = l } }

// WithHook adds fn, called synchronously by Write with each record after it
// is complete (metrics, recent-attempts history). fn must not modify the
// record; it may keep it.
func WithHook(fn func(*Record)) Option {
	return func(w *Writer) { w.hooks = append(w.hooks, fn) }
}

// WithClock sets the source of RecordedAt and of log sampling. Default time.Now.
func WithClock(now func() time.Time) Option { return func(w *Writer) { w.now = now } }

// NewWriter returns a Writer producing to topic through cl, which may be
// shared with other producers.
func NewWriter(cl *kgo.Client, topic string, opts ...Option) *Writer {
	w := &Writer{cl: cl, topic: topic, log: zap.NewNop(), now: time.Now}
	for _, o := range opts {
		o(w)
	}
	w.log = sampled(w.log, w.now)
	w.promise = w.produced
	return w
}

// Write sets r.RecordedAt, trims r.Response to an excerpt, runs the hooks
// and produces r keyed by its delivery id, with r.Headers. It does not
// block on the broker, and its failures are counted, not returned. r
// belongs to the Writer after the call.
//
// Cancelling ctx does not drop the record; its values (the span) are kept
// for the client's hooks.
func (w *Writer) Write(ctx context.Context, r *Record) {
	r.RecordedAt = w.now().UTC()
	if len(r.Response) > ResponseLimit || !utf8.ValidString(r.Response) {
		r.Response = Excerpt([]byte(r.Response))
	}
	for _, h := range w.hooks {
		h(r)
	}
	key, value := r.keyValue()
	w.cl.TryProduce(context.WithoutCancel(ctx), &kgo.Record{
		Topic:   w.topic,
		Key:     key,
		Value:   value,
		Headers: r.Headers,
	}, w.promise)
}

// Flush waits until every record buffered by the client, outcomes and any
// other, is acknowledged or failed, or ctx is done.
func (w *Writer) Flush(ctx context.Context) error {
	return w.cl.Flush(ctx)
}

// Errors returns how many outcome records were lost: not encodable, not
// buffered, or not acknowledged.
func (w *Writer) Errors() uint64 { return w.errs.Load() }

func (w *Writer) produced(r *kgo.Record, err error) {
	if err != nil {
		w.fail(string(r.Key), err)
	}
}

func (w *Writer) fail(deliveryID string, err error) {
	n := w.errs.Add(1)
	if errors.Is(err, kgo.ErrMaxBuffered) {
		err = fmt.Errorf("producer buffer full: %w", err)
	}
	w.log.Warn("outcome: record lost",
		zap.String("topic", w.topic), zap.String("delivery_id", deliveryID),
		zap.Error(err), zap.Uint64("outcome_errors_total", n))
}

// sampled lets through the first entry of each message per minute: a broker
// outage must not turn every outcome into a log line.
func sampled(l *zap.Logger, now func() time.Time) *zap.Logger {
	return l.WithOptions(
		zap.WithClock(clock(now)),
		zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Minute, 1, 0)
		}),
	)
}

type clock func() time.Time

func (c clock) Now() time.Time                       { return c() }
func (clock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }
