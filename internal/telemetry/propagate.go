package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// contextOnly is the tracer provider when spans go nowhere: nothing is
// recorded, yet every span still gets a span context of its own — its
// parent's trace id, flags and state, or a new sampled trace — so trace ids
// still reach logs, outcome records and subscribers (traceparent) exactly
// as they would with an exporter. Recording spans only to drop them cost
// every delivery its attributes' memory and time.
type contextOnly struct{ embedded.TracerProvider }

func (contextOnly) Tracer(string, ...trace.TracerOption) trace.Tracer { return contextOnlyTracer{} }

// Shutdown has nothing to flush.
func (contextOnly) Shutdown(context.Context) error { return nil }

type contextOnlyTracer struct{ embedded.Tracer }

func (contextOnlyTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var parent trace.SpanContext
	if cfg := trace.NewSpanStartConfig(opts...); !cfg.NewRoot() {
		parent = trace.SpanContextFromContext(ctx)
	}
	cfg := trace.SpanContextConfig{SpanID: newSpanID(), TraceFlags: trace.FlagsSampled}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = newTraceID()
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx)
}

func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
