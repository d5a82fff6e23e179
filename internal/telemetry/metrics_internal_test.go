package telemetry

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
)

// exemplarsOf records one measurement in a sampled span with the
// provider's options and counts the exemplars collected.
func exemplarsOf(t *testing.T) int {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(append(meterOptions(), sdkmetric.WithReader(r))...)
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	h, err := mp.Meter("test").Float64Histogram("herald.test.duration")
	if err != nil {
		t.Fatal(err)
	}
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: newTraceID(), SpanID: newSpanID(), TraceFlags: trace.FlagsSampled,
	}))
	h.Record(ctx, 0.25)
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	n, points := 0, 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				points++
				n += len(dp.Exemplars)
			}
		}
	}
	if points != 1 {
		t.Fatalf("%d data points, want 1", points)
	}
	return n
}

// TestNoExemplars pins that measurements in sampled spans keep no
// exemplar: /metrics has no way to show one.
func TestNoExemplars(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXEMPLAR_FILTER", "")
	if n := exemplarsOf(t); n != 0 {
		t.Errorf("%d exemplars kept, want none", n)
	}
}

// TestExemplarFilterFromEnv pins that the standard variable still decides
// when it is set.
func TestExemplarFilterFromEnv(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXEMPLAR_FILTER", "always_on")
	if n := exemplarsOf(t); n != 1 {
		t.Errorf("%d exemplars kept, want 1", n)
	}
}
