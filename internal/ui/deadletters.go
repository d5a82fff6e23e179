package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/herald-dev/herald/internal/apiclient"
)

// deadLetter is the part of a GET /v1/dlq entry the dashboard shows.
type deadLetter struct {
	DeliveryID     string    `json:"delivery_id"`
	EventType      string    `json:"event_type"`
	SubscriptionID string    `json:"subscription_id"`
	Reason         string    `json:"reason"`
	LastStatus     int       `json:"last_status"`
	LastError      string    `json:"last_error"`
	Attempts       int       `json:"attempts"`
	Replayed       bool      `json:"replayed"`
	Timestamp      time.Time `json:"dead_lettered_at"`
	Corrupt        string    `json:"corrupt"`
}

// listDeadLetters calls GET /v1/dlq in process.
func (h *Handler) listDeadLetters(ctx context.Context, r *http.Request, token, sub string, limit int) ([]deadLetter, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if sub != "" {
		q.Set("subscription", sub)
	}
	var out struct {
		Data []deadLetter `json:"data"`
	}
	err := h.call(ctx, r, token, http.MethodGet, "/v1/dlq?"+q.Encode(), nil, &out)
	return out.Data, err
}

// replayDeadLetters calls POST /v1/dlq/replay in process.
func (h *Handler) replayDeadLetters(ctx context.Context, r *http.Request, token, sub string, ids []string) (int, error) {
	body := map[string]any{}
	if sub != "" {
		body["subscription_id"] = sub
	}
	if len(ids) > 0 {
		body["ids"] = ids
	}
	var out struct {
		Replayed int `json:"replayed"`
	}
	err := h.call(ctx, r, token, http.MethodPost, "/v1/dlq/replay", body, &out)
	return out.Replayed, err
}

// call makes one JSON request to the API in process; an error reply comes
// back as *apiclient.Error, as from the client.
func (h *Handler) call(ctx context.Context, r *http.Request, token, method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://herald.internal"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := inProcess{api: h.api, remote: r.RemoteAddr}.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var env struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &env)
		return &apiclient.Error{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message, Field: env.Error.Field}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding %s %s: %w", method, path, err)
	}
	return nil
}
