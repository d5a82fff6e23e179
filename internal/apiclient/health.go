package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/herald-dev/herald/internal/history"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// Health is a subscription's health counters: recent attempts and success
// rate, last error and dead letters from the history, and the circuit
// state on the instance that answered.
type Health struct {
	history.Health
	Circuit string `json:"circuit,omitempty"`
}

// Detail is a subscription with its health counters. Health is nil when
// the server keeps no history.
type Detail struct {
	subscription.Subscription
	Health *Health `json:"health,omitempty"`
}

// DetailPage is a page of subscriptions with their health.
type DetailPage struct {
	Data       []*Detail `json:"data"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// GetDetail returns one subscription with its health counters.
func (c *Client) GetDetail(ctx context.Context, id string) (*Detail, error) {
	var out Detail
	if err := c.do(ctx, http.MethodGet, subPath(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDetails returns one page of subscriptions with their health.
func (c *Client) ListDetails(ctx context.Context, opts ListOptions) (*DetailPage, error) {
	var out DetailPage
	if err := c.do(ctx, http.MethodGet, listPath(opts, "health"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetStatus changes a subscription's status: "paused" holds its
// deliveries in the retry tiers, "active" resumes them.
func (c *Client) SetStatus(ctx context.Context, id, status string) (*subscription.Subscription, error) {
	return c.UpdateSubscription(ctx, id, map[string]string{"status": status}, 0)
}

// Attempt is one delivery attempt.
type Attempt = history.Attempt

// Attempts returns a subscription's most recent attempts, newest first;
// limit 0 takes the server's default (20).
func (c *Client) Attempts(ctx context.Context, id string, limit int) ([]Attempt, error) {
	path := subPath(id) + "/attempts"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out struct {
		Data []Attempt `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// TestResult is the attempt a test send made.
type TestResult struct {
	DeliveryID  string        `json:"delivery_id"`
	EventID     string        `json:"event_id"`
	Delivered   bool          `json:"delivered"`
	State       outcome.State `json:"state"`
	HTTPStatus  int           `json:"http_status,omitempty"`
	LatencyMS   float64       `json:"latency_ms"`
	Error       string        `json:"error,omitempty"`
	Response    string        `json:"response,omitempty"`
	TraceID     string        `json:"trace_id,omitempty"`
	AttemptedAt time.Time     `json:"attempted_at"`
}

// SendTest sends a herald.test event to the subscription now and returns
// the attempt. A failed delivery is a result, not an error.
func (c *Client) SendTest(ctx context.Context, id string) (*TestResult, error) {
	var out TestResult
	if err := c.do(ctx, http.MethodPost, subPath(id)+"/test", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// listPath is the list URL for opts, with include when set.
func listPath(opts ListOptions, include string) string {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("topic", opts.Topic)
	set("event_type", opts.EventType)
	set("status", opts.Status)
	set("tenant", opts.Tenant)
	set("cursor", opts.Cursor)
	set("include", include)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	path := "/v1/subscriptions"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return path
}
