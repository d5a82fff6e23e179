package event

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
)

// CloudEvents Kafka protocol binding, binary content mode.
const (
	HeaderCEID          = "ce_id"
	HeaderCEType        = "ce_type"
	HeaderCETime        = "ce_time"
	HeaderContentType   = "content-type"
	HeaderTraceParent   = "traceparent"
	defaultTypeField    = "type"
	defaultMaxValueSize = 1 << 20
	maxHeaderValueSize  = 8 << 10
	maxHeaderCount      = 256
)

// Rejection is why a record cannot be delivered at all. It is reported as an
// outcome; the record's offset still moves on.
type Rejection struct {
	Reason string
}

func (r *Rejection) Error() string { return "event rejected: " + r.Reason }

// Extractor reads event identity from records. The zero value follows the
// defaults of DESIGN.md: ce_* headers, then the JSON field "type", then the
// fallbacks; values up to 1 MiB.
type Extractor struct {
	// IDHeader and IDField name where the event id is when there is no ce_id.
	IDHeader string
	IDField  string
	// TypeHeader and TypeField name where the event type is when there is no
	// ce_type. TypeField defaults to "type".
	TypeHeader string
	TypeField  string
	// MaxValueBytes bounds the record value; larger records are rejected.
	// Default 1 MiB.
	MaxValueBytes int
}

// FromRecord builds the Event of r. It never fails for lack of an id or type
// (the fallbacks always apply); it returns a *Rejection, together with an
// Event that still carries the identity it could find, for records herald
// must not deliver: oversized values, too many or oversized headers, headers
// that are not valid UTF-8.
func (x *Extractor) FromRecord(r *kgo.Record) (Event, error) {
	ev := Event{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   r.Headers,
		Time:      r.Timestamp,
	}
	var ceID, ceType, ceTime, cfgID, cfgType string
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderCEID:
			ceID = string(h.Value)
		case HeaderCEType:
			ceType = string(h.Value)
		case HeaderCETime:
			ceTime = string(h.Value)
		case HeaderContentType, "ce_datacontenttype":
			if ev.ContentType == "" || h.Key == HeaderContentType {
				ev.ContentType = string(h.Value)
			}
		case HeaderTraceParent:
			ev.TraceParent = string(h.Value)
		}
		if x.IDHeader != "" && h.Key == x.IDHeader {
			cfgID = string(h.Value)
		}
		if x.TypeHeader != "" && h.Key == x.TypeHeader {
			cfgType = string(h.Value)
		}
	}

	ev.ID = firstNonEmpty(ceID, cfgID)
	ev.Type = firstNonEmpty(ceType, cfgType)
	if (ev.ID == "" && x.IDField != "") || ev.Type == "" {
		id, typ := x.jsonFields(r.Value)
		if ev.ID == "" {
			ev.ID = id
		}
		if ev.Type == "" {
			ev.Type = typ
		}
	}
	if ev.ID == "" {
		ev.ID = Position(r.Topic, r.Partition, r.Offset)
	}
	if ev.Type == "" {
		ev.Type = r.Topic
	}
	if ceTime != "" {
		if t, err := time.Parse(time.RFC3339Nano, ceTime); err == nil {
			ev.Time = t
		}
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	return ev, x.check(&ev, r)
}

func (x *Extractor) check(ev *Event, r *kgo.Record) error {
	max := x.MaxValueBytes
	if max <= 0 {
		max = defaultMaxValueSize
	}
	if len(r.Value) > max {
		return &Rejection{Reason: fmt.Sprintf("value is %d bytes, over the limit of %d", len(r.Value), max)}
	}
	if len(r.Headers) > maxHeaderCount {
		return &Rejection{Reason: fmt.Sprintf("record has %d headers, over the limit of %d", len(r.Headers), maxHeaderCount)}
	}
	for _, h := range r.Headers {
		if len(h.Value) > maxHeaderValueSize {
			return &Rejection{Reason: fmt.Sprintf("header %q is %d bytes, over the limit of %d", truncate(h.Key), len(h.Value), maxHeaderValueSize)}
		}
		if !utf8.ValidString(h.Key) {
			return &Rejection{Reason: "a header key is not valid UTF-8"}
		}
	}
	if !utf8.ValidString(ev.ID) || !utf8.ValidString(ev.Type) {
		return &Rejection{Reason: "event id or type is not valid UTF-8"}
	}
	if len(ev.ID) > 512 || len(ev.Type) > 256 {
		return &Rejection{Reason: "event id or type is too long"}
	}
	return nil
}

func (x *Extractor) typeField() string {
	if x.TypeField != "" {
		return x.TypeField
	}
	return defaultTypeField
}

// jsonFields reads the top-level string or number fields named by IDField
// and TypeField in one pass over the event, without building a tree of it
// (fastjson reuses its parser's memory). The first of duplicate keys wins;
// a value that is not a JSON object yields nothing.
func (x *Extractor) jsonFields(value []byte) (id, typ string) {
	if len(value) == 0 || value[0] != '{' {
		return "", ""
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(value)
	if err != nil {
		return "", ""
	}
	obj, err := v.Object()
	if err != nil {
		return "", ""
	}
	if x.IDField != "" {
		id, _ = scalar(obj.Get(x.IDField))
	}
	typ, _ = scalar(obj.Get(x.typeField()))
	return id, typ
}

var parsers fastjson.ParserPool

// scalar is a string field's value or a number field's literal.
func scalar(v *fastjson.Value) (string, bool) {
	if v == nil {
		return "", false
	}
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes()), true
	case fastjson.TypeNumber:
		return string(v.MarshalTo(nil)), true
	}
	return "", false
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
