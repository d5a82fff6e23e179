package outcome

import (
	"strconv"

	"github.com/herald-dev/herald/internal/jsonenc"
)

// MarshalJSON encodes r as encoding/json would from its tags, without
// reflection: herald writes one record per attempt, and reflection was the
// larger part of the cost of writing one.
func (r *Record) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 512+len(r.Response)+len(r.Error))), nil
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

func appendString(b []byte, s string) []byte { return jsonenc.AppendString(b, s, true) }
