// Package telemetry sets up herald's traces, metrics and logs: an
// OpenTelemetry tracer provider configured by the standard OTEL_* variables,
// a meter provider read by Prometheus, and a zap logger whose level can be
// changed while herald runs. One Setup at start-up, one Shutdown at the end
// of the drain.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultServiceName names herald in traces and metrics unless
// OTEL_SERVICE_NAME or Config.ServiceName says otherwise.
const DefaultServiceName = "herald"

// ScopeName is the instrumentation scope of herald's own tracers and meters.
const ScopeName = "github.com/herald-dev/herald"

// Config says what Setup builds. Everything about export comes from the
// standard OpenTelemetry environment variables, not from here.
type Config struct {
	// ServiceName is service.name when OTEL_SERVICE_NAME is not set.
	// Default "herald".
	ServiceName string
	// Version is service.version and the user agent's version.
	Version string
	// Console makes logs human-readable (herald dev) instead of JSON.
	Console bool
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// LogOutput is where logs go. Default stderr.
	LogOutput zapcore.WriteSyncer
}

// Telemetry holds the providers and the logger built by Setup.
type Telemetry struct {
	tracer    tracerProvider
	meter     *sdkmetric.MeterProvider
	registry  *prometheus.Registry
	log       *zap.Logger
	level     zap.AtomicLevel
	exporting string // "" when spans are not exported
}

// Setup builds the logger, the tracer provider and the meter provider, and
// installs the providers and the W3C trace-context and baggage propagator
// as the OpenTelemetry globals.
//
// Spans are exported with OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_TRACES_EXPORTER is not
// "none"), over grpc or http/protobuf as OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL
// says (default http/protobuf, as the specification has it), through a batch
// processor. Without an endpoint spans are not recorded, but each still
// has a span context of its own under its parent's trace, so trace ids
// reach logs, outcome records and subscribers as they would otherwise.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = DefaultServiceName
	}
	t := &Telemetry{}
	var err error
	if t.log, t.level, err = newLogger(cfg); err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if t.tracer, t.exporting, err = newTracerProvider(ctx, res); err != nil {
		return nil, err
	}
	if t.meter, t.registry, err = newMeterProvider(res); err != nil {
		_ = t.tracer.Shutdown(ctx)
		return nil, err
	}

	otel.SetTracerProvider(t.tracer)
	otel.SetMeterProvider(t.meter)
	otel.SetTextMapPropagator(Propagator())
	otel.SetErrorHandler(errorHandler{t.log.Named("otel")})
	return t, nil
}

// Propagator is what herald reads and writes on records and requests: W3C
// trace context and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// TracerProvider makes herald's spans.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tracer }

// MeterProvider makes herald's instruments; /metrics shows them.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meter }

// Meter is herald's meter.
func (t *Telemetry) Meter() metric.Meter { return t.meter.Meter(ScopeName) }

// Logger is the root logger.
func (t *Telemetry) Logger() *zap.Logger { return t.log }

// Level is the logger's level; changing it takes effect at once.
func (t *Telemetry) Level() zap.AtomicLevel { return t.level }

// LevelHandler serves the log level: GET returns {"level":"info"}, PUT with
// {"level":"debug"} (or level=debug as a form) changes it.
func (t *Telemetry) LevelHandler() http.Handler { return t.level }

// MetricsHandler serves every instrument of MeterProvider, plus the Go
// runtime and process collectors, in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler { return metricsHandler(t.registry) }

// Exporting describes where spans go ("grpc", "http/protobuf"), or is empty
// when they are not exported.
func (t *Telemetry) Exporting() string { return t.exporting }

// Shutdown exports the spans still buffered, stops the providers and syncs
// the logger. Call it last in the drain, with a deadline.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if err := t.tracer.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: flushing spans: %w", err))
	}
	if err := t.meter.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: stopping metrics: %w", err))
	}
	if err := t.log.Sync(); err != nil && !ignorableSyncError(err) {
		errs = append(errs, fmt.Errorf("telemetry: syncing logs: %w", err))
	}
	return errors.Join(errs...)
}

// errorHandler logs the SDK's own failures (an unreachable collector, a
// full export queue) instead of printing them with the standard logger.
type errorHandler struct{ log *zap.Logger }

func (h errorHandler) Handle(err error) { h.log.Warn("opentelemetry", zap.Error(err)) }
