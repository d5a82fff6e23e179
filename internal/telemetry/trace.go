package telemetry

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// newResource describes this process. OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override what cfg says.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)),
	}
	if cfg.Version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(cfg.Version)))
	}
	attrs = append(attrs, resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID(), resource.WithFromEnv())
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// tracerProvider is a trace.TracerProvider that can be shut down.
type tracerProvider interface {
	trace.TracerProvider
	Shutdown(context.Context) error
}

// newTracerProvider exports through OTLP when an endpoint is configured.
// The sampler comes from OTEL_TRACES_SAMPLER(_ARG) (the SDK reads them;
// default parentbased_always_on), the batch settings from OTEL_BSP_*.
// Without an exporter spans carry their context and nothing else
// (contextOnly), unless OTEL_TRACES_SAMPLER asks for a sampler.
func newTracerProvider(ctx context.Context, res *resource.Resource) (tracerProvider, string, error) {
	exp, protocol, err := newSpanExporter(ctx)
	if err != nil {
		return nil, "", err
	}
	if exp == nil {
		if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
			return contextOnly{}, "", nil
		}
		// A configured sampler decides the sampled flag subscribers see.
		return sdktrace.NewTracerProvider(sdktrace.WithResource(res)), "", nil
	}
	return sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp)), protocol, nil
}

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL that herald exports with.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

func newSpanExporter(ctx context.Context) (sdktrace.SpanExporter, string, error) {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")), "none") {
		return nil, "", nil
	}
	if env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return nil, "", nil
	}
	protocol := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	if protocol == "" {
		protocol = ProtocolHTTP
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case ProtocolHTTP:
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, "", fmt.Errorf("telemetry: OTLP protocol %q is not supported (use %s or %s)", protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if err != nil {
		return nil, "", fmt.Errorf("telemetry: OTLP %s exporter: %w", protocol, err)
	}
	return exp, protocol, nil
}

// env returns the first of the variables that is set and not blank.
func env(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(os.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}
