package apiclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/internal/dlq"
)

// DLQFilter selects dead letters. Zero fields are not sent; Since and Until
// bound when an entry was dead-lettered, [Since, Until).
type DLQFilter struct {
	SubscriptionID string
	Since, Until   time.Time
	IDs            []string // delivery ids
	// Limit keeps the oldest Limit entries of a list (server default 100,
	// max 1,000). Replays take every entry that matches.
	Limit int
}

// DeadLetter is one entry of herald.dlq as the API shows it.
type DeadLetter struct {
	dlq.Entry
	// Value is the event: the JSON itself when ValueEncoding is "json",
	// else a JSON string of its base64.
	Value         json.RawMessage `json:"value"`
	ValueEncoding string          `json:"value_encoding"`
}

// Event returns the event's bytes as they were on the source topic.
func (d *DeadLetter) Event() ([]byte, error) {
	if d.ValueEncoding != "base64" {
		return d.Value, nil
	}
	var s string
	if err := json.Unmarshal(d.Value, &s); err != nil {
		return nil, fmt.Errorf("herald API: dead letter %s: value is not a base64 string: %w", d.DeliveryID, err)
	}
	return base64.StdEncoding.DecodeString(s)
}

// ListDLQ returns the dead letters that match f, oldest first.
func (c *Client) ListDLQ(ctx context.Context, f DLQFilter) ([]DeadLetter, error) {
	q := url.Values{}
	if f.SubscriptionID != "" {
		q.Set("subscription", f.SubscriptionID)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	if len(f.IDs) > 0 {
		q.Set("ids", strings.Join(f.IDs, ","))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/v1/dlq"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Data []DeadLetter `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// replayBody is the body of POST /v1/dlq/replay.
type replayBody struct {
	SubscriptionID string   `json:"subscription_id,omitempty"`
	Since          string   `json:"since,omitempty"`
	Until          string   `json:"until,omitempty"`
	IDs            []string `json:"ids,omitempty"`
}

// ReplayDLQ re-injects the dead letters that match f into the first retry
// tier, attempts reset and delivery ids kept, and returns how many. The
// server refuses an empty filter, so a whole queue is never replayed by
// accident. f.Limit is not sent: a replay takes every match.
func (c *Client) ReplayDLQ(ctx context.Context, f DLQFilter) (int, error) {
	body := replayBody{SubscriptionID: f.SubscriptionID, IDs: f.IDs}
	if !f.Since.IsZero() {
		body.Since = f.Since.Format(time.RFC3339Nano)
	}
	if !f.Until.IsZero() {
		body.Until = f.Until.Format(time.RFC3339Nano)
	}
	var out struct {
		Replayed int `json:"replayed"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/dlq/replay", nil, body, &out); err != nil {
		return 0, err
	}
	return out.Replayed, nil
}
