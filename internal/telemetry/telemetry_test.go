package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/herald-dev/herald/internal/telemetry"
)

// noExport clears every variable that would make Setup export.
func noExport(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_EXPORTER",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} {
		t.Setenv(k, "")
	}
}

func setup(t *testing.T, cfg telemetry.Config) *telemetry.Telemetry {
	t.Helper()
	if cfg.LogOutput == nil {
		cfg.LogOutput = zapcore.AddSync(io.Discard)
	}
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// TestSetupWithoutEndpoint pins that with no OTLP endpoint nothing is
// exported, yet spans have trace ids and the W3C propagator is installed,
// so outcomes, logs and subscribers still see the trace.
func TestSetupWithoutEndpoint(t *testing.T) {
	noExport(t)
	tel := setup(t, telemetry.Config{})
	if e := tel.Exporting(); e != "" {
		t.Fatalf("Exporting() = %q, want nothing", e)
	}
	ctx, span := otel.Tracer("test").Start(context.Background(), "s")
	defer span.End()
	if !span.SpanContext().IsValid() || !span.SpanContext().IsSampled() {
		t.Fatalf("span context %v, want a valid sampled one", span.SpanContext())
	}
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if !strings.Contains(c["traceparent"], span.SpanContext().TraceID().String()) {
		t.Fatalf("global propagator wrote %v", c)
	}
}

func TestSetupNoneExporter(t *testing.T) {
	noExport(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if e := setup(t, telemetry.Config{}).Exporting(); e != "" {
		t.Fatalf("Exporting() = %q with OTEL_TRACES_EXPORTER=none", e)
	}
}

func TestSetupRejectsUnknownProtocol(t *testing.T) {
	noExport(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, err := telemetry.Setup(context.Background(), telemetry.Config{LogOutput: zapcore.AddSync(io.Discard)}); err == nil {
		t.Fatal("Setup accepted http/json")
	}
}

func TestSetupRejectsUnknownLevel(t *testing.T) {
	noExport(t)
	if _, err := telemetry.Setup(context.Background(), telemetry.Config{LogLevel: "loud"}); err == nil {
		t.Fatal("Setup accepted log level loud")
	}
}

func TestSamplerFromEnv(t *testing.T) {
	noExport(t)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	setup(t, telemetry.Config{})
	_, span := otel.Tracer("test").Start(context.Background(), "s")
	defer span.End()
	if !span.SpanContext().TraceID().IsValid() || span.SpanContext().IsSampled() {
		t.Fatalf("span context %v, want a trace id, not sampled", span.SpanContext())
	}
}

// collected is what a fake OTLP collector received.
type collected struct {
	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
}

func (c *collected) add(r *collectortrace.ExportTraceServiceRequest) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
}

// spans returns span name → service.name of its resource.
func (c *collected) spans() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for _, r := range c.reqs {
		for _, rs := range r.ResourceSpans {
			var service string
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out[s.Name] = service
				}
			}
		}
	}
	return out
}

func TestExportOTLPHTTP(t *testing.T) {
	noExport(t)
	got := &collected{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got.add(req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "herald-from-env")

	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "ignored", LogOutput: zapcore.AddSync(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	if e := tel.Exporting(); e != telemetry.ProtocolHTTP {
		t.Fatalf("Exporting() = %q, want the default %s", e, telemetry.ProtocolHTTP)
	}
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "exported over http")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if svc, ok := got.spans()["exported over http"]; !ok || svc != "herald-from-env" {
		t.Fatalf("collector got %v, want the span from service herald-from-env", got.spans())
	}
}

type traceService struct {
	collectortrace.UnimplementedTraceServiceServer
	got *collected
}

func (s traceService) Export(_ context.Context, r *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.got.add(r)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestExportOTLPGRPC(t *testing.T) {
	noExport(t)
	got := &collected{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, traceService{got: got})
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")

	tel, err := telemetry.Setup(context.Background(), telemetry.Config{Version: "1.2.3", LogOutput: zapcore.AddSync(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	if e := tel.Exporting(); e != telemetry.ProtocolGRPC {
		t.Fatalf("Exporting() = %q, want grpc", e)
	}
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "exported over grpc")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if svc, ok := got.spans()["exported over grpc"]; !ok || svc != telemetry.DefaultServiceName {
		t.Fatalf("collector got %v, want the span from service herald", got.spans())
	}
}

func TestMetricsHandler(t *testing.T) {
	noExport(t)
	tel := setup(t, telemetry.Config{})
	c, err := tel.Meter().Int64Counter("herald.test.things")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3)
	body := scrape(t, tel.MetricsHandler())
	for _, want := range []string{"herald_test_things_total 3", "go_goroutines", "target_info{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rr.Code)
	}
	return rr.Body.String()
}

// TestLevelAtRunTime pins that the level handler changes what the logger
// writes while it runs.
func TestLevelAtRunTime(t *testing.T) {
	noExport(t)
	var buf syncBuffer
	tel := setup(t, telemetry.Config{LogLevel: "info", LogOutput: &buf})
	tel.Logger().Debug("hidden")
	rr := httptest.NewRecorder()
	tel.LevelHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodPut, "/debug/loglevel", strings.NewReader(`{"level":"debug"}`)))
	if rr.Code != http.StatusOK {
		t.Fatalf("PUT level answered %d: %s", rr.Code, rr.Body)
	}
	if tel.Level().Level() != zapcore.DebugLevel {
		t.Fatalf("level %v after PUT debug", tel.Level().Level())
	}
	tel.Logger().Debug("shown")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
		t.Fatalf("log output %q", out)
	}
}

// TestJSONLogsCarryTrace pins the fields of a delivery log line in serve's
// JSON format.
func TestJSONLogsCarryTrace(t *testing.T) {
	noExport(t)
	var buf syncBuffer
	tel := setup(t, telemetry.Config{LogOutput: &buf})
	ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "s")
	telemetry.DeliveryLogger(tel.Logger(), ctx, "msg_1", "sub_1").Info("delivered")
	span.End()
	telemetry.DeliveryLogger(tel.Logger(), context.Background(), "msg_2", "sub_1").Info("no span")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON: %q", lines[0])
	}
	want := map[string]any{
		"msg": "delivered", "level": "info", "delivery_id": "msg_1", "subscription_id": "sub_1",
		"trace_id": span.SpanContext().TraceID().String(), "span_id": span.SpanContext().SpanID().String(),
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if _, ok := second["trace_id"]; ok {
		t.Errorf("a line without span has trace_id: %v", second)
	}
}

func TestConsoleLogs(t *testing.T) {
	noExport(t)
	var buf syncBuffer
	tel := setup(t, telemetry.Config{Console: true, LogOutput: &buf})
	tel.Logger().Info("hello", zap.String("k", "v"))
	if out := buf.String(); strings.HasPrefix(out, "{") || !strings.Contains(out, "hello") {
		t.Fatalf("console output %q", out)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error { return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
