package outcome

import (
	"math"
	"strconv"
	"time"

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
	b = appendFloat(b, r.LatencyMS)
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
		b = appendTime(b, *r.NextAttemptAt)
	}
	b = append(b, `,"attempted_at":`...)
	b = appendTime(b, r.AttemptedAt)
	b = append(b, `,"recorded_at":`...)
	b = appendTime(b, r.RecordedAt)
	return append(b, '}')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat formats f as encoding/json does: no exponent between 1e-6
// and 1e21, a short one outside. NaN and infinities, which JSON cannot
// hold, become 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func appendString(b []byte, s string) []byte { return jsonenc.AppendString(b, s, true) }
