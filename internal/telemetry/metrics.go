package telemetry

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
)

// newMeterProvider is read by Prometheus through its own registry, not the
// process-wide default one, so two instances in one test process do not
// collide.
func newMeterProvider(res *resource.Resource) (*sdkmetric.MeterProvider, *prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, nil, fmt.Errorf("telemetry: go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, fmt.Errorf("telemetry: process collector: %w", err)
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(append(meterOptions(), sdkmetric.WithReader(exp), sdkmetric.WithResource(res))...)
	return mp, reg, nil
}

// meterOptions are the provider's options besides its reader and resource.
//
// Exemplars are off: /metrics speaks the Prometheus text format, which
// has no exemplars, so every histogram measurement made in a sampled span
// (all of herald's) would pay for a reservoir that is never read — two
// clock readings and a copy of its attributes each. A filter set in
// OTEL_METRICS_EXEMPLAR_FILTER is left to the SDK, which reads it.
func meterOptions() []sdkmetric.Option {
	if strings.TrimSpace(os.Getenv("OTEL_METRICS_EXEMPLAR_FILTER")) != "" {
		return nil
	}
	return []sdkmetric.Option{sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)}
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil, ErrorHandling: promhttp.ContinueOnError})
}
