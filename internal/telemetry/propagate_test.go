package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestContextOnly pins what spans are when nothing exports them: not
// recorded, each with a span id of its own, in its parent's trace with the
// parent's flags and state, or in a new sampled trace.
func TestContextOnly(t *testing.T) {
	tr := contextOnly{}.Tracer("test")

	rootCtx, root := tr.Start(context.Background(), "root")
	rc := root.SpanContext()
	if !rc.IsValid() || !rc.IsSampled() || root.IsRecording() {
		t.Fatalf("new root %v recording=%v, want a valid sampled context, not recorded", rc, root.IsRecording())
	}
	root.SetAttributes() // no-ops, never panics
	root.End()

	ts, err := trace.ParseTraceState("vendor=x")
	if err != nil {
		t.Fatal(err)
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: rc.TraceID(), SpanID: rc.SpanID(), TraceFlags: 0, TraceState: ts, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	childCtx, child := tr.Start(ctx, "child")
	cc := child.SpanContext()
	if cc.TraceID() != rc.TraceID() || cc.SpanID() == rc.SpanID() || !cc.SpanID().IsValid() {
		t.Fatalf("child %v of %v: want the parent's trace and a new span id", cc, parent)
	}
	if cc.IsSampled() || cc.TraceState().Get("vendor") != "x" {
		t.Fatalf("child %v: want the parent's flags (not sampled) and trace state", cc)
	}
	if got := trace.SpanContextFromContext(childCtx); !got.Equal(cc) {
		t.Fatalf("context carries %v, span says %v", got, cc)
	}

	_, fresh := tr.Start(rootCtx, "new root", trace.WithNewRoot())
	if fresh.SpanContext().TraceID() == rc.TraceID() {
		t.Fatal("WithNewRoot kept the parent's trace")
	}
}
