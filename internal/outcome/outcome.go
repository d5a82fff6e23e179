// Package outcome writes what happened to every delivery attempt, and every
// final state, as one JSON record on herald.outcomes keyed by delivery id,
// for analysts, the dashboard and the attempts API. The record's shape is
// schemas/outcome.schema.json.
package outcome

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// State is what an attempt or a delivery came to.
type State string

const (
	Delivered           State = "delivered"            // the endpoint answered 2xx
	Failed              State = "failed"               // the attempt failed; a retry is scheduled (NextAttemptAt)
	Duplicate           State = "duplicate"            // already delivered: skipped without a request
	Rejected            State = "rejected"             // the event cannot be delivered at all (too large, malformed)
	DeadLettered        State = "dead_lettered"        // attempts exhausted or a permanent failure: sent to the DLQ
	Parked              State = "parked"               // endpoint slow, open or rate-limited: moved to a retry tier without spending an attempt
	Disabled            State = "disabled"             // 410 Gone, or the subscription is disabled: not sent
	SubscriptionDeleted State = "subscription_deleted" // the subscription was deleted before delivery
	Aborted             State = "aborted"              // the receiver ended retries with "webhook-delivery: abort"
	Alert               State = "alert"                // a delivery was dead-lettered; for alerting on the subscription
)

// Record is one outcome. Optional fields are left out of the JSON when empty.
type Record struct {
	DeliveryID     string `json:"delivery_id"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	SubscriptionID string `json:"subscription_id"`

	// Where the event was read: its source topic, or the retry tier topic.
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`

	Attempt    int     `json:"attempt"` // 1 for the first request; for a final state, the attempts made
	State      State   `json:"state"`
	HTTPStatus int     `json:"http_status,omitempty"`
	LatencyMS  float64 `json:"latency_ms"`
	Error      string  `json:"error,omitempty"`
	Response   string  `json:"response,omitempty"` // first ResponseLimit bytes of the body, valid UTF-8
	TraceID    string  `json:"trace_id,omitempty"`
	Tier       string  `json:"tier,omitempty"` // retry tier of the next attempt, e.g. "1m"

	NextAttemptAt *time.Time `json:"next_attempt_at"` // null unless a retry is scheduled
	AttemptedAt   time.Time  `json:"attempted_at"`
	RecordedAt    time.Time  `json:"recorded_at"` // set by Writer.Write

	// Headers go on the Kafka record, not in the JSON: typically the
	// attempt's traceparent, so that consumers of outcomes join the trace.
	Headers []kgo.RecordHeader `json:"-"`
}

// ResponseLimit is how many bytes of a response body an outcome keeps.
const ResponseLimit = 1 << 10

// Excerpt returns the first ResponseLimit bytes of a response body as valid
// UTF-8: a rune cut at the limit is dropped and invalid bytes become U+FFFD,
// without ever exceeding the limit.
func Excerpt(body []byte) string {
	if len(body) <= ResponseLimit && utf8.Valid(body) {
		return string(body)
	}
	var sb strings.Builder
	sb.Grow(min(len(body), ResponseLimit))
	for len(body) > 0 {
		r, size := utf8.DecodeRune(body)
		if sb.Len()+utf8.RuneLen(r) > ResponseLimit {
			break
		}
		sb.WriteRune(r)
		body = body[size:]
	}
	return sb.String()
}
