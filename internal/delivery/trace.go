package delivery

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"
	"go.opentelemetry.io/otel/trace"
)

// The client's spans and metrics follow the OpenTelemetry semantic
// conventions for HTTP clients, as the otelhttp transport it replaced made
// them: a CLIENT span "HTTP POST" per attempt, child of the span in the
// attempt's context, whose context goes to the endpoint in traceparent; and
// the http.client.request.duration and http.client.request.body.size
// histograms.

// scopeName is the instrumentation scope of the client's spans and metrics.
const scopeName = "github.com/herald-dev/herald/internal/delivery"

const spanName = "HTTP " + http.MethodPost

func newTracer(tp trace.TracerProvider) trace.Tracer {
	return tp.Tracer(scopeName)
}

// startSpan starts the attempt's client span. Its attributes are set when
// it ends, so that they take no memory while the endpoint takes its time;
// otelhttp did not give them to samplers either.
func (c *Client) startSpan(ctx context.Context) (context.Context, trace.Span) {
	tracer := c.tracer
	if tracer == nil {
		tp := otel.GetTracerProvider()
		if s := trace.SpanFromContext(ctx); s.SpanContext().IsValid() {
			tp = s.TracerProvider()
		}
		tracer = newTracer(tp)
	}
	return tracer.Start(ctx, spanName, clientKind)
}

// clientKind is made once: each trace.WithSpanKind allocates.
var clientKind = trace.WithSpanKind(trace.SpanKindClient)

// endSpan ends the attempt's span with the request's attributes and the
// response status, or the error that left the attempt without one. As for
// any HTTP client span, a status of 400 or more is an error.
func (c *Client) endSpan(span trace.Span, t *target, resp *response, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		semconv.HTTPRequestMethodPost,
		semconv.URLFull(t.fullURL),
		semconv.ServerAddress(t.hostname),
	)
	if port := t.nonDefaultPort(); port > 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	if err != nil {
		attrs = append(attrs, semconv.NetworkProtocolVersion("1.1"), semconv.ErrorTypeKey.String(errorType(err)))
		span.SetAttributes(attrs...)
		span.SetStatus(codes.Error, err.Error())
		return
	}
	attrs = append(attrs, semconv.NetworkProtocolVersion(resp.protoVersion()), semconv.HTTPResponseStatusCode(resp.status))
	if resp.status >= 400 || resp.status < 100 {
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(resp.status)))
		span.SetStatus(codes.Error, "")
	}
	span.SetAttributes(attrs...)
}

// errorType is the error.type of an attempt that got no response: the
// NetworkError's stage, or "refused" for a destination the policy refuses.
func errorType(err error) string {
	switch e := err.(type) {
	case *NetworkError:
		return e.Stage
	case *DestinationError:
		return "refused"
	}
	return semconv.ErrorTypeOther.Value.AsString()
}

func (r *response) protoVersion() string {
	if r.http11 {
		return "1.1"
	}
	return "1.0"
}

// nonDefaultPort is server.port as otelhttp gave it: the URL's port, only
// when it is not the scheme's default.
func (t *target) nonDefaultPort() int {
	port, _ := strconv.Atoi(t.port)
	if port == 0 || (t.key.https && port == 443) || (!t.key.https && port == 80) {
		return 0
	}
	return port
}

func (c *Client) propagator() propagation.TextMapPropagator {
	if c.propagators != nil {
		return c.propagators
	}
	return otel.GetTextMapPropagator()
}

// headerCarrier lets a propagator write the trace context into a request
// being built.
type headerCarrier struct{ h *fasthttp.RequestHeader }

func (c headerCarrier) Get(key string) string {
	return string(c.h.Peek(http.CanonicalHeaderKey(key)))
}

func (c headerCarrier) Set(key, value string) {
	c.h.Set(http.CanonicalHeaderKey(key), value)
}

func (c headerCarrier) Keys() []string {
	var keys []string
	for k := range c.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}

// clientMetrics are the HTTP client histograms.
type clientMetrics struct {
	duration httpconv.ClientRequestDuration
	bodySize httpconv.ClientRequestBodySize
	// sets caches attribute sets by what they are made of: a few per
	// endpoint host, and building one was most of recording a request.
	sets *sync.Map // metricKey → attribute.Set
	size *atomic.Int64
}

// metricKey is what a request's metric attributes are made of.
type metricKey struct {
	hostname, port string
	https          bool
	version        string
	status         int
	errType        string
}

// maxMetricSets bounds the cache; past it sets are built per request.
const maxMetricSets = 10000

func newClientMetrics(mp metric.MeterProvider) clientMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(scopeName)
	m := clientMetrics{sets: new(sync.Map), size: new(atomic.Int64)}
	var err error
	if m.duration, err = httpconv.NewClientRequestDuration(meter); err != nil {
		otel.Handle(err)
	}
	if m.bodySize, err = httpconv.NewClientRequestBodySize(meter); err != nil {
		otel.Handle(err)
	}
	return m
}

// record records one attempt: the time to its response header (or its
// failure) and the size of the body sent.
func metricSet(t *target, k metricKey) attribute.Set {
	scheme := "http"
	if k.https {
		scheme = "https"
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs,
		semconv.HTTPRequestMethodPost,
		semconv.ServerAddress(k.hostname),
		semconv.URLScheme(scheme),
	)
	if port := t.nonDefaultPort(); port > 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	attrs = append(attrs, semconv.NetworkProtocolName("http"), semconv.NetworkProtocolVersion(k.version))
	if k.errType == "" {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(k.status))
	} else {
		attrs = append(attrs, semconv.ErrorTypeKey.String(k.errType))
	}
	return attribute.NewSet(attrs...)
}

func (m *clientMetrics) record(ctx context.Context, t *target, d time.Duration, sent bool, bodyLen int, resp *response, err error) {
	if !m.duration.Enabled(ctx) && !m.bodySize.Enabled(ctx) {
		return
	}
	k := metricKey{hostname: t.hostname, port: t.port, https: t.key.https, version: "1.1"}
	if err == nil {
		k.version = resp.protoVersion()
		k.status = resp.status
	} else {
		k.errType = errorType(err)
	}
	var set attribute.Set
	if v, ok := m.sets.Load(k); ok {
		set = v.(attribute.Set)
	} else {
		set = metricSet(t, k)
		if m.size.Add(1) <= maxMetricSets {
			m.sets.Store(k, set)
		}
	}
	m.duration.RecordSet(ctx, d.Seconds(), set)
	if !sent {
		bodyLen = 0
	}
	m.bodySize.RecordSet(ctx, int64(bodyLen), set)
}
