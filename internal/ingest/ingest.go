// Package ingest lets producers without a Kafka client publish events over
// HTTP (POST /v1/events): it writes each event to the ingest topic as a
// CloudEvents Kafka-binding record and answers only after the broker
// acknowledged it. An Idempotency-Key makes a retried request publish once.
package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"

	"github.com/herald-dev/herald/internal/event"
)

// Event is the body of POST /v1/events.
type Event struct {
	// ID is the event id (ce_id); generated ("evt_…") when empty.
	ID   string `json:"id,omitempty"`
	Type string `json:"type"`
	// Data is the event, any JSON value; it becomes the record value.
	Data json.RawMessage `json:"data"`
	// Key is the Kafka record key, which keeps one entity's events in order.
	Key string `json:"key,omitempty"`
}

// Limits of an event's fields.
const (
	MaxIDLength   = 256
	MaxTypeLength = 256
	MaxKeyLength  = 1024
	MaxIdemKey    = 255
)

// FieldError is an invalid or unknown field of the request.
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Decode reads an Event strictly: unknown fields, a second value and wrong
// types are errors; then it validates it.
func Decode(r io.Reader) (*Event, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, errors.New("body must be a JSON object")
	}
	ev := &Event{}
	for name, v := range fields {
		var dst any
		switch name {
		case "id":
			dst = &ev.ID
		case "type":
			dst = &ev.Type
		case "key":
			dst = &ev.Key
		case "data":
			var c bytes.Buffer
			if err := json.Compact(&c, v); err != nil {
				return nil, &FieldError{"data", "must be JSON"}
			}
			ev.Data = c.Bytes()
			continue
		default:
			return nil, &FieldError{name, "unknown field " + `"` + name + `"`}
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, &FieldError{name, "must be a string"}
		}
	}
	return ev, ev.Validate()
}

// Validate checks the fields' presence and limits.
func (e *Event) Validate() error {
	switch {
	case e.Type == "":
		return &FieldError{"type", "is required"}
	case len(e.Type) > MaxTypeLength || !printable(e.Type):
		return &FieldError{"type", fmt.Sprintf("must be at most %d printable characters", MaxTypeLength)}
	case len(e.Data) == 0:
		return &FieldError{"data", "is required"}
	case len(e.ID) > MaxIDLength || !printable(e.ID):
		return &FieldError{"id", fmt.Sprintf("must be at most %d printable characters", MaxIDLength)}
	case len(e.Key) > MaxKeyLength:
		return &FieldError{"key", fmt.Sprintf("must be at most %d bytes", MaxKeyLength)}
	}
	return nil
}

// ValidIdempotencyKey reports whether k can be used as an Idempotency-Key.
func ValidIdempotencyKey(k string) bool {
	return k != "" && len(k) <= MaxIdemKey && printable(k)
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == unicode.ReplacementChar })
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns "evt_" and 26 base32 characters of 128 random bits.
func NewID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "evt_" + idEncoding.EncodeToString(b)
}

// Result is what Publish did.
type Result struct {
	ID string
	// Replayed says an earlier request with the same Idempotency-Key
	// already published the event; nothing was written this time.
	Replayed  bool
	Partition int32
	Offset    int64
}

// Errors of Publish.
var (
	// ErrInProgress: another request with the same Idempotency-Key has not
	// finished yet.
	ErrInProgress = errors.New("ingest: a request with this Idempotency-Key is in progress")
	// ErrKeyReused: the Idempotency-Key was used for a different event.
	ErrKeyReused = errors.New("ingest: the Idempotency-Key was used with a different request")
	// ErrUnavailable: the idempotency store cannot be reached, or there is
	// none; nothing was written.
	ErrUnavailable = errors.New("ingest: idempotency store unavailable")
)

// Header names of the records Publish writes (CloudEvents Kafka binding,
// binary mode).
const (
	HeaderSource      = "ce_source"
	HeaderSpecVersion = "ce_specversion"
	// Source is the ce_source of events published through the API.
	Source = "/herald/api/events"
)

// Producer publishes events to one topic.
type Producer struct {
	cl    *kgo.Client
	topic string
	idem  *idempotency
	now   func() time.Time
}

// Option configures a Producer.
type Option func(*Producer)

// WithIdempotency keeps Idempotency-Keys in st. Without it, requests that
// carry one fail with ErrUnavailable.
func WithIdempotency(st IdempotencyStore, ttl time.Duration) Option {
	return func(p *Producer) { p.idem = &idempotency{st: st, ttl: ttl} }
}

// WithClock sets the clock for ce_time and record timestamps. Default time.Now.
func WithClock(now func() time.Time) Option { return func(p *Producer) { p.now = now } }

// NewProducer returns a Producer writing to topic through cl.
func NewProducer(cl *kgo.Client, topic string, opts ...Option) *Producer {
	p := &Producer{cl: cl, topic: topic, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Topic is where events are written.
func (p *Producer) Topic() string { return p.topic }

// Publish writes ev (validated) and returns once the broker acknowledged
// it. With a non-empty idempotencyKey, a key seen before for the same event
// returns the first request's id with Replayed set and writes nothing.
func (p *Producer) Publish(ctx context.Context, ev *Event, idempotencyKey string) (Result, error) {
	if err := ev.Validate(); err != nil {
		return Result{}, err
	}
	id := ev.ID
	if id == "" {
		id = NewID()
	}
	if idempotencyKey != "" {
		if p.idem == nil {
			return Result{}, ErrUnavailable
		}
		claim, err := p.idem.claim(ctx, idempotencyKey, fingerprint(ev), id)
		if err != nil || claim.replayed {
			return Result{ID: claim.id, Replayed: claim.replayed}, err
		}
	}
	res, err := p.produce(ctx, ev, id)
	if idempotencyKey != "" {
		if err != nil {
			p.idem.release(ctx, idempotencyKey)
		} else if cerr := p.idem.complete(ctx, idempotencyKey, fingerprint(ev), id); cerr != nil {
			// Written, but a retry would write again: say so, with the id.
			return res, fmt.Errorf("%w: the event %s was written but its Idempotency-Key could not be kept: %v", ErrUnavailable, id, cerr)
		}
	}
	return res, err
}

func (p *Producer) produce(ctx context.Context, ev *Event, id string) (Result, error) {
	now := p.now().UTC()
	rec := &kgo.Record{
		Topic:     p.topic,
		Value:     ev.Data,
		Timestamp: now,
		Headers: []kgo.RecordHeader{
			{Key: event.HeaderCEID, Value: []byte(id)},
			{Key: event.HeaderCEType, Value: []byte(ev.Type)},
			{Key: HeaderSource, Value: []byte(Source)},
			{Key: HeaderSpecVersion, Value: []byte("1.0")},
			{Key: event.HeaderCETime, Value: []byte(now.Format(time.RFC3339Nano))},
			{Key: event.HeaderContentType, Value: []byte("application/json")},
		},
	}
	if ev.Key != "" {
		rec.Key = []byte(ev.Key)
	}
	// The caller's trace context, so deliveries join the producer's trace.
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	if tp := carrier.Get(event.HeaderTraceParent); tp != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: event.HeaderTraceParent, Value: []byte(tp)})
	}
	r, err := p.cl.ProduceSync(ctx, rec).First()
	if err != nil {
		return Result{}, fmt.Errorf("ingest: writing to %s: %w", p.topic, err)
	}
	return Result{ID: id, Partition: r.Partition, Offset: r.Offset}, nil
}
