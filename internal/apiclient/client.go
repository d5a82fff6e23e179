// Package apiclient is a Go client for herald's admin API, used by the CLI
// and by tests. Errors the API answers come back as *Error.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
)

// Client talks to one herald server. It is safe for concurrent use.
type Client struct {
	base      string
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client. Default: one with a 30s timeout.
func WithHTTPClient(c *http.Client) Option { return func(cl *Client) { cl.http = c } }

// WithUserAgent sets the User-Agent header. Default "herald-apiclient".
func WithUserAgent(ua string) Option { return func(cl *Client) { cl.userAgent = ua } }

// New returns a client for the server at baseURL (e.g.
// "http://127.0.0.1:8080") authenticating with token.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		token:     token,
		http:      &http.Client{Timeout: 30 * time.Second},
		userAgent: "herald-apiclient",
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is an error reply from the API.
type Error struct {
	Status  int    // HTTP status
	Code    string // machine-readable, e.g. "validation_failed"; empty when the reply was not the API's JSON
	Message string
	Field   string // the offending field of a validation error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("herald API: %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Field != "" {
		msg += ": " + e.Field
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// SubscriptionCreate is the body of a create request. Zero fields are left
// out, so the server's defaults apply.
type SubscriptionCreate struct {
	URL                string            `json:"url"`
	Description        string            `json:"description,omitempty"`
	Tenant             string            `json:"tenant,omitempty"`
	Topics             []string          `json:"topics,omitempty"`
	EventTypes         []string          `json:"event_types,omitempty"`
	Payload            string            `json:"payload,omitempty"`
	ThinURLTemplate    string            `json:"thin_url_template,omitempty"`
	SignatureScheme    string            `json:"signature_scheme,omitempty"`
	Headers            map[string]string `json:"headers,omitempty"`
	RateLimitPerSecond int               `json:"rate_limit_per_second,omitempty"`
	MaxInFlight        int               `json:"max_in_flight,omitempty"`
	TimeoutMS          int               `json:"timeout_ms,omitempty"`
	MaxAttempts        int               `json:"max_attempts,omitempty"`
	Status             string            `json:"status,omitempty"`
	// Signing "ed25519" adds v1a signatures; the reply's PublicKey
	// verifies them. Default (empty or "hmac"): the whsec_ secret only.
	Signing string `json:"signing,omitempty"`
}

// Created is a newly created subscription with its signing secret, which
// the API shows only this once.
type Created struct {
	subscription.Subscription
	Secret string `json:"secret"`
}

// ListOptions filter and page a list. Zero fields are not sent.
type ListOptions struct {
	Topic     string
	EventType string
	Status    string
	Tenant    string
	Limit     int    // server default 50, max 500
	Cursor    string // NextCursor of the previous page
}

// Page is one page of a list. NextCursor is empty on the last page.
type Page struct {
	Data       []*subscription.Subscription `json:"data"`
	NextCursor string                       `json:"next_cursor,omitempty"`
}

// CreateSubscription creates a subscription. sub is anything that marshals
// to the create body: *SubscriptionCreate, a map, or json.RawMessage.
func (c *Client) CreateSubscription(ctx context.Context, sub any) (*Created, error) {
	var out Created
	if err := c.do(ctx, http.MethodPost, "/v1/subscriptions", nil, sub, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSubscriptions returns one page.
func (c *Client) ListSubscriptions(ctx context.Context, opts ListOptions) (*Page, error) {
	var out Page
	if err := c.do(ctx, http.MethodGet, listPath(opts, ""), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllSubscriptions follows the cursor from opts.Cursor to the last page.
func (c *Client) AllSubscriptions(ctx context.Context, opts ListOptions) ([]*subscription.Subscription, error) {
	var all []*subscription.Subscription
	for {
		p, err := c.ListSubscriptions(ctx, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Data...)
		if p.NextCursor == "" {
			return all, nil
		}
		opts.Cursor = p.NextCursor
	}
}

// GetSubscription returns one subscription.
func (c *Client) GetSubscription(ctx context.Context, id string) (*subscription.Subscription, error) {
	var out subscription.Subscription
	if err := c.do(ctx, http.MethodGet, subPath(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateSubscription applies patch (a map or a struct that marshals to the
// fields to change). A non-zero ifVersion makes the change conditional:
// the server answers 412 when the subscription's version differs.
func (c *Client) UpdateSubscription(ctx context.Context, id string, patch any, ifVersion int64) (*subscription.Subscription, error) {
	h := http.Header{}
	if ifVersion != 0 {
		h.Set("If-Match", `"`+strconv.FormatInt(ifVersion, 10)+`"`)
	}
	var out subscription.Subscription
	if err := c.do(ctx, http.MethodPatch, subPath(id), h, patch, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSubscription deletes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, subPath(id), nil, nil, nil)
}

// RotateSecret makes a new secret and returns it; the old one keeps
// signing for grace (0 retires it at once, e.g. after a leak).
func (c *Client) RotateSecret(ctx context.Context, id string, grace time.Duration) (string, error) {
	body := map[string]string{"grace_period": grace.String()}
	var out struct {
		Secret string `json:"secret"`
	}
	if err := c.do(ctx, http.MethodPost, subPath(id)+"/rotate-secret", nil, body, &out); err != nil {
		return "", err
	}
	return out.Secret, nil
}

func subPath(id string) string { return "/v1/subscriptions/" + url.PathEscape(id) }

// maxErrorBody bounds how much of an error reply is read.
const maxErrorBody = 64 << 10

func (c *Client) do(ctx context.Context, method, path string, h http.Header, in, out any) error {
	_, err := c.doHeader(ctx, method, path, h, in, out)
	return err
}

// doHeader is do that also returns the reply's header.
func (c *Client) doHeader(ctx context.Context, method, path string, h http.Header, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("herald API: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.Header, decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Header, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.Header, fmt.Errorf("herald API: decoding %s %s reply: %w", method, path, err)
	}
	return resp.Header, nil
}

func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(raw, &env) == nil && env.Error.Code != "" {
		e.Code, e.Message, e.Field = env.Error.Code, env.Error.Message, env.Error.Field
		return e
	}
	e.Message = strings.TrimSpace(string(raw))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "…"
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
