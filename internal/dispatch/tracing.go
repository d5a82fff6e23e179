package dispatch

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/telemetry"
)

// Span attributes of herald's own, next to the messaging conventions.
const (
	AttrDeliveryID     = attribute.Key("herald.delivery.id")
	AttrSubscriptionID = attribute.Key("herald.subscription.id")
	AttrEventType      = attribute.Key("herald.event.type")
	AttrAttempt        = attribute.Key("herald.attempt")
	AttrOutcome        = attribute.Key("herald.outcome")
	AttrRetryTier      = attribute.Key("herald.retry.tier")
	AttrReplay         = attribute.Key("herald.replay")
)

// TracingOption configures Tracing.
type TracingOption func(*tracing)

// WithRetryGroup names the consumer group of jobs that come from a retry
// tier (messaging.consumer.group.name). Default: the group given to Tracing.
func WithRetryGroup(group string) TracingOption {
	return func(t *tracing) { t.retryGroup = group }
}

type tracing struct {
	tracer     trace.Tracer
	group      string
	retryGroup string
}

// Tracing starts a CONSUMER span "process <topic>" around every attempt.
// Its parent is the producer's context (OriginTraceParent; a new root when
// the event came without one) and it links to the previous hop, the attempt
// a retry follows, so one trace holds every attempt of an event whatever
// tier it waited in. The HTTP client span of the attempt, and the
// traceparent of any retry record written during it, are its children.
//
// group is messaging.consumer.group.name of first attempts. The span's
// status is Error when the attempt failed (retried, dead-lettered, or left
// unfinished) and Ok when it was delivered.
func Tracing(tp trace.TracerProvider, group string, opts ...TracingOption) Middleware {
	return newTracing(tp, group, opts...).middleware
}

func newTracing(tp trace.TracerProvider, group string, opts ...TracingOption) *tracing {
	t := &tracing{
		tracer: tp.Tracer(telemetry.ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		group:  group,
	}
	for _, o := range opts {
		o(t)
	}
	if t.retryGroup == "" {
		t.retryGroup = group
	}
	return t
}

// TracingStarter is Tracing for a Starter (Attempter.Begin).
func TracingStarter(tp trace.TracerProvider, group string, opts ...TracingOption) func(Starter) Starter {
	return newTracing(tp, group, opts...).starter
}

func (t *tracing) middleware(next Handler) Handler {
	return func(ctx context.Context, j *Job) Result {
		ctx, span := t.start(ctx, j)
		res := next(ctx, j)
		t.end(span, j, res)
		return res
	}
}

// starter is middleware for a Starter: the span ends when the attempt
// does, after its response.
func (t *tracing) starter(next Starter) Starter {
	return func(ctx context.Context, j *Job) (Finisher, Result) {
		ctx, span := t.start(ctx, j)
		f, res := next(ctx, j)
		if f == nil {
			t.end(span, j, res)
			return nil, res
		}
		return &tracedFlight{f: f, t: t, span: span, j: j}, Result{}
	}
}

type tracedFlight struct {
	f    Finisher
	t    *tracing
	span trace.Span
	j    *Job
}

func (tf *tracedFlight) Await() { await(tf.f) }

func (tf *tracedFlight) Finish() Result {
	res := tf.f.Finish()
	tf.t.end(tf.span, tf.j, res)
	return res
}

// end records how the attempt ended on its span and ends it.
func (t *tracing) end(span trace.Span, j *Job, res Result) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	// All attributes in one call, once the outcome is known: the span
	// copies them once instead of once at start and again when it grows
	// for the outcome.
	span.SetAttributes(t.attributes(j, res)...)
	switch res.Step {
	case Delivered:
		span.SetStatus(codes.Ok, "")
	case Retried, DeadLettered:
		span.SetStatus(codes.Error, "delivery attempt failed: "+res.Step.String())
	case Abandoned:
		err := res.Err
		if err == nil {
			err = errors.New("abandoned")
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// The options of a span without links are made once: each option, and
// each slice of them, allocates.
var (
	consumerKind = trace.WithSpanKind(trace.SpanKindConsumer)
	childOpts    = []trace.SpanStartOption{consumerKind}
	rootOpts     = []trace.SpanStartOption{consumerKind, trace.WithNewRoot()}
)

func (t *tracing) start(ctx context.Context, j *Job) (context.Context, trace.Span) {
	ev := j.Event
	origin := j.OriginTraceParent
	if origin == "" && j.Tier == "" && !j.Replay {
		origin = ev.TraceParent
	}
	// The attempt belongs to the producer's trace, not to whatever span the
	// caller's ctx carries.
	opts := rootOpts
	parent := trace.SpanContextFromContext(extract(origin))
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
		opts = childOpts
	}
	if ev.TraceParent != "" && ev.TraceParent != origin {
		if prev := trace.SpanContextFromContext(extract(ev.TraceParent)); prev.IsValid() {
			opts = append(slices.Clip(opts), trace.WithLinks(trace.Link{SpanContext: prev}))
		}
	}
	return t.tracer.Start(ctx, "process "+ev.Topic, opts...)
}

// attributes are the process span's: messaging semantic conventions and
// herald's own, with the attempt's outcome.
func (t *tracing) attributes(j *Job, res Result) []attribute.KeyValue {
	ev := j.Event
	group := t.group
	if j.Tier != "" {
		group = t.retryGroup
	}
	attrs := make([]attribute.KeyValue, 0, 15)
	attrs = append(attrs,
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(ev.Topic),
		semconv.MessagingDestinationPartitionID(strconv.Itoa(int(ev.Partition))),
		semconv.MessagingKafkaOffset(int(ev.Offset)),
		semconv.MessagingConsumerGroupName(group),
		semconv.MessagingMessageID(ev.ID),
		AttrEventType.String(ev.Type),
		AttrDeliveryID.String(j.DeliveryID),
		AttrSubscriptionID.String(j.Subscription.ID),
		AttrAttempt.Int(j.Attempt),
		AttrOutcome.String(res.Step.String()),
	)
	if j.Tier != "" {
		attrs = append(attrs, AttrRetryTier.String(j.Tier))
	}
	if j.Replay {
		attrs = append(attrs, AttrReplay.Bool(true))
	}
	return attrs
}

// extract reads a W3C traceparent. The header is W3C by contract, whatever
// propagator is installed globally.
func extract(traceparent string) context.Context {
	if traceparent == "" {
		return context.Background()
	}
	return propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": traceparent})
}

// TraceOutcome adds each outcome record of an attempt to the attempt's span
// as an event, and records the error of failed ones, so the span says why
// an attempt failed, not only that it did. Use it as (part of)
// Attempter.Observe.
func TraceOutcome(ctx context.Context, _ *Job, r *outcome.Record) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.String("herald.outcome.state", string(r.State))}
	if r.HTTPStatus != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(r.HTTPStatus))
	}
	if r.Error != "" {
		attrs = append(attrs, attribute.String("error.message", r.Error))
	}
	span.AddEvent("outcome", trace.WithAttributes(attrs...))
	if r.Error != "" && r.State != outcome.Parked {
		span.RecordError(errors.New(r.Error))
	}
}

// Observers returns an Attempter.Observe that calls each non-nil fn in turn.
func Observers(fns ...func(ctx context.Context, j *Job, r *outcome.Record)) func(ctx context.Context, j *Job, r *outcome.Record) {
	var all []func(ctx context.Context, j *Job, r *outcome.Record)
	for _, fn := range fns {
		if fn != nil {
			all = append(all, fn)
		}
	}
	return func(ctx context.Context, j *Job, r *outcome.Record) {
		for _, fn := range all {
			fn(ctx, j, r)
		}
	}
}

// LogOutcomes returns an Attempter.Observe that writes one log line per
// outcome record, with the fields of JobLogger: failed attempts at info,
// dead letters at warn, the rest (delivered, parked, duplicate, …) at debug.
func LogOutcomes(log *zap.Logger) func(ctx context.Context, j *Job, r *outcome.Record) {
	return func(ctx context.Context, j *Job, r *outcome.Record) {
		level := zap.DebugLevel
		switch r.State {
		case outcome.Alert:
			return // the dead_lettered line says it
		case outcome.Failed, outcome.Aborted, outcome.Disabled:
			level = zap.InfoLevel
		case outcome.DeadLettered:
			level = zap.WarnLevel
		}
		if !log.Core().Enabled(level) {
			return // before its message is made: most outcomes log at debug
		}
		ce := log.Check(level, "delivery "+string(r.State))
		if ce == nil {
			return
		}
		fields := append(telemetry.LogFields(ctx),
			zap.String(telemetry.FieldDeliveryID, j.DeliveryID),
			zap.String(telemetry.FieldSubscriptionID, j.Subscription.ID),
			zap.String("event_id", j.Event.ID),
			zap.Int("attempt", j.Attempt))
		if j.Tier != "" {
			fields = append(fields, zap.String("tier", j.Tier))
		}
		if r.HTTPStatus != 0 {
			fields = append(fields, zap.Int("status", r.HTTPStatus))
		}
		if r.LatencyMS > 0 {
			fields = append(fields, zap.Float64("latency_ms", r.LatencyMS))
		}
		if r.Error != "" {
			fields = append(fields, zap.String("error", r.Error))
		}
		ce.Write(fields...)
	}
}

// JobLogger is log with the fields every delivery log line carries:
// trace_id and span_id of the attempt's span, delivery_id and
// subscription_id.
func JobLogger(log *zap.Logger, ctx context.Context, j *Job) *zap.Logger {
	return telemetry.DeliveryLogger(log, ctx, j.DeliveryID, j.Subscription.ID)
}
