package outcome

import (
	"strconv"

	"github.com/herald-dev/herald/internal/jsonenc"
)

// MarshalJSON encodes r as encoding/json would from its tags, without
// reflection: herald writes one record per attempt, and reflection was the
// larger part of the cost of writing one.
func (r *Record) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, r.jsonSize())), nil
}

// AppendJSON appends r's JSON (schemas/outcome.schema.json) to b.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"delivery_id":`...)
	b = appendString(b, r.DeliveryID)
	b = append(b, `,"event_id":`...)
	b = appendString(b, r.EventID)
	b = append(b, `,"event_type":`...)
	b = appendString(b, r.EventType)
	b = append(b, `,"subscription_id":`...)
	b = appendString(b, r.SubscriptionID)
	b = append(b, `,"topic":`...)
	b = appendString(b, r.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(r.Attempt), 10)
	b = append(b, `,"state":`...)
	b = appendString(b, string(r.State))
	if r.HTTPStatus != 0 {
		b = append(b, `,"http_status":`...)
		b = strconv.AppendInt(b, int64(r.HTTPStatus), 10)
	}
	b = append(b, `,"latency_ms":`...)
	b = jsonenc.AppendFloat(b, r.LatencyMS)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if r.Response != "" {
		b = append(b, `,"response":`...)
		b = appendString(b, r.Response)
	}
	if r.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendString(b, r.TraceID)
	}
	if r.Tier != "" {
		b = append(b, `,"tier":`...)
		b = appendString(b, r.Tier)
	}
	b = append(b, `,"next_attempt_at":`...)
	if r.NextAttemptAt == nil {
		b = append(b, "null"...)
	} else {
		b = jsonenc.AppendTime(b, *r.NextAttemptAt)
	}
	b = append(b, `,"attempted_at":`...)
	b = jsonenc.AppendTime(b, r.AttemptedAt)
	b = append(b, `,"recorded_at":`...)
	b = jsonenc.AppendTime(b, r.RecordedAt)
	return append(b, '}')
}

// jsonSize is about how long AppendJSON makes r, so that its buffer is
// allocated once and not much larger than needed: exact for the keys and
// for strings without escapes, usual lengths for numbers and times, and
// room for a quote in every eight bytes of a response, which is often JSON.
// A record that is longer only costs a second allocation.
func (r *Record) jsonSize() int {
	const (
		keys = len(`{"delivery_id":"","event_id":"","event_type":"","subscription_id":"","topic":"",` +
			`"partition":,"offset":,"attempt":,"state":"","latency_ms":,` +
			`"next_attempt_at":null,"attempted_at":,"recorded_at":}`)
		numbers = len("1023") + len("1234567890") + len("12") + len("1234.567")
		when    = len(`"2006-01-02T15:04:05.999999999Z"`)
	)
	n := keys + numbers + 2*when +
		len(r.DeliveryID) + len(r.EventID) + len(r.EventType) + len(r.SubscriptionID) + len(r.Topic) + len(r.State)
	if r.HTTPStatus != 0 {
		n += len(`,"http_status":200`)
	}
	if r.Error != "" {
		n += len(`,"error":""`) + len(r.Error)
	}
	if r.Response != "" {
		n += len(`,"response":""`) + len(r.Response) + len(r.Response)/8
	}
	if r.TraceID != "" {
		n += len(`,"trace_id":""`) + len(r.TraceID)
	}
	if r.Tier != "" {
		n += len(`,"tier":""`) + len(r.Tier)
	}
	if r.NextAttemptAt != nil {
		n += when - len("null")
	}
	return n
}

func appendString(b []byte, s string) []byte { return jsonenc.AppendString(b, s, true) }

// keyValue returns r's Kafka key and value. Both live until the record's
// promise, so they share one allocation.
func (r *Record) keyValue() (key, value []byte) {
	buf := make([]byte, 0, len(r.DeliveryID)+r.jsonSize())
	buf = append(buf, r.DeliveryID...)
	key = buf[:len(buf):len(buf)]
	return key, r.AppendJSON(buf[len(buf):])
}
