package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
)

// Event is the body of POST /v1/events.
type Event struct {
	ID   string          `json:"id,omitempty"` // generated when empty
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	Key  string          `json:"key,omitempty"` // Kafka record key
}

// Sent is the reply to SendEvent.
type Sent struct {
	ID string `json:"id"`
	// Replayed says an earlier request with the same idempotency key
	// already published the event; nothing was written this time.
	Replayed bool `json:"-"`
}

// SendEvent publishes ev through the server; it returns once the broker
// has it. A non-empty idempotencyKey makes retries of the same request
// publish once.
func (c *Client) SendEvent(ctx context.Context, ev *Event, idempotencyKey string) (*Sent, error) {
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var out Sent
	rh, err := c.doHeader(ctx, http.MethodPost, "/v1/events", h, ev, &out)
	if err != nil {
		return nil, err
	}
	out.Replayed = rh.Get("Idempotent-Replayed") == "true"
	return &out, nil
}
