package telemetry

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// TraceHeaders is a franz-go hook that writes the W3C context of the span
// in a produced record's context into its headers, so every record herald
// writes (outcomes, retries, dead letters) can be found from its trace. A
// record that already has a traceparent keeps it: retry records carry the
// hop they were written for. It makes no spans of its own.
//
//	kgo.WithHooks(telemetry.TraceHeaders{})
type TraceHeaders struct{}

var _ kgo.HookProduceRecordBuffered = TraceHeaders{}

// OnProduceRecordBuffered implements kgo.HookProduceRecordBuffered.
func (TraceHeaders) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Context == nil || !trace.SpanContextFromContext(r.Context).IsValid() {
		return
	}
	for _, h := range r.Headers {
		if h.Key == "traceparent" {
			return
		}
	}
	Propagator().Inject(r.Context, recordCarrier{r})
}

// recordCarrier adds headers; it reads none, since Inject only writes.
type recordCarrier struct{ r *kgo.Record }

func (c recordCarrier) Get(key string) string {
	for i := len(c.r.Headers) - 1; i >= 0; i-- {
		if c.r.Headers[i].Key == key {
			return string(c.r.Headers[i].Value)
		}
	}
	return ""
}

func (c recordCarrier) Set(key, value string) {
	for i, h := range c.r.Headers {
		if h.Key == key {
			c.r.Headers[i].Value = []byte(value)
			return
		}
	}
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c recordCarrier) Keys() []string {
	keys := make([]string, len(c.r.Headers))
	for i, h := range c.r.Headers {
		keys[i] = h.Key
	}
	return keys
}
