// Package event turns a Kafka record into the event herald delivers: its id,
// type and time, taken from CloudEvents headers, configured headers or JSON
// fields, or the fallbacks DESIGN.md fixes.
package event

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Event is one source record as herald sees it. Value is the record value,
// unchanged; it is never copied on the hot path.
type Event struct {
	ID   string
	Type string
	Time time.Time

	Topic     string
	Partition int32
	Offset    int64

	Key         []byte
	Value       []byte
	Headers     []kgo.RecordHeader
	ContentType string

	// TraceParent is the W3C context of the producer, empty when absent.
	TraceParent string

	// Shared holds what is derived from the event once for all of its
	// deliveries; nil derives it again for each.
	Shared *Shared
}

// Shared is what the deliveries of one event have in common: the envelope
// body, the same bytes for every subscription that takes it, is built and
// its JSON checked once however many subscriptions match. It is safe for
// concurrent use; the zero value is ready.
type Shared struct {
	once     sync.Once
	envelope []byte
}

// Envelope returns build's result, calling build only the first time. The
// bytes are shared: callers must not modify them. A nil Shared calls build
// every time.
func (s *Shared) Envelope(build func() []byte) []byte {
	if s == nil {
		return build()
	}
	s.once.Do(func() { s.envelope = build() })
	return s.envelope
}

// Source is "<topic>/<partition>/<offset>", the position the event came from.
func (e *Event) Source() string {
	return Position(e.Topic, e.Partition, e.Offset)
}

// Header returns the last value of the record header named key.
func (e *Event) Header(key string) (string, bool) {
	for i := len(e.Headers) - 1; i >= 0; i-- {
		if e.Headers[i].Key == key {
			return string(e.Headers[i].Value), true
		}
	}
	return "", false
}
