package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder answers every request with status and body and keeps what it
// received.
type recorder struct {
	status int
	body   string
	reqs   []*http.Request
	bodies []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.reqs = append(rec.reqs, r)
	rec.bodies = append(rec.bodies, string(b))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.status)
	_, _ = io.WriteString(w, rec.body)
}

func newTest(t *testing.T, status int, body string) (*Client, *recorder) {
	rec := &recorder{status: status, body: body}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return New(srv.URL+"/", "tok", WithHTTPClient(srv.Client()), WithUserAgent("test-agent")), rec
}

func TestRequests(t *testing.T) {
	ctx := context.Background()
	c, rec := newTest(t, 200, `{"id": "sub_1", "version": 3, "data": [], "secret": "whsec_x"}`)

	if _, err := c.CreateSubscription(ctx, &SubscriptionCreate{URL: "https://e.com", Topics: []string{"orders"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListSubscriptions(ctx, ListOptions{Topic: "orders", EventType: "order.*", Limit: 10, Cursor: "abc"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSubscription(ctx, "sub/1", map[string]any{"status": "paused"}, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSubscription(ctx, "sub_1", map[string]any{"status": "active"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateSecret(ctx, "sub_1", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSubscription(ctx, "sub_1"); err != nil {
		t.Fatal(err)
	}

	for _, r := range rec.reqs {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("User-Agent") != "test-agent" {
			t.Errorf("%s %s: headers %v", r.Method, r.URL, r.Header)
		}
	}
	want := []struct{ method, uri, body string }{
		{"POST", "/v1/subscriptions", `{"url":"https://e.com","topics":["orders"]}`},
		{"GET", "/v1/subscriptions?cursor=abc&event_type=order.%2A&limit=10&topic=orders", ""},
		{"PATCH", "/v1/subscriptions/sub%2F1", `{"status":"paused"}`},
		{"PATCH", "/v1/subscriptions/sub_1", `{"status":"active"}`},
		{"POST", "/v1/subscriptions/sub_1/rotate-secret", `{"grace_period":"0s"}`},
		{"DELETE", "/v1/subscriptions/sub_1", ""},
	}
	for i, w := range want {
		r := rec.reqs[i]
		if r.Method != w.method || r.URL.RequestURI() != w.uri || rec.bodies[i] != w.body {
			t.Errorf("request %d = %s %s %s, want %s %s %s", i, r.Method, r.URL.RequestURI(), rec.bodies[i], w.method, w.uri, w.body)
		}
	}
	if got := rec.reqs[2].Header.Get("If-Match"); got != `"3"` {
		t.Errorf("If-Match = %q", got)
	}
	if got := rec.reqs[3].Header.Get("If-Match"); got != "" {
		t.Errorf("unconditional update sent If-Match %q", got)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		status int
		body   string
		want   Error
		text   string
	}{
		{400, `{"error": {"code": "validation_failed", "message": "must be https", "field": "url"}}`,
			Error{400, "validation_failed", "must be https", "url"}, "herald API: 400 validation_failed: url: must be https"},
		{404, `{"error": {"code": "not_found", "message": "subscription not found"}}`,
			Error{404, "not_found", "subscription not found", ""}, "herald API: 404 not_found: subscription not found"},
		{502, `<html>bad gateway</html>`, Error{502, "", "<html>bad gateway</html>", ""}, "herald API: 502: <html>bad gateway</html>"},
		{503, ``, Error{503, "", "Service Unavailable", ""}, "herald API: 503: Service Unavailable"},
	} {
		c, _ := newTest(t, tc.status, tc.body)
		_, err := c.GetSubscription(ctx, "sub_1")
		var e *Error
		if !errors.As(err, &e) || *e != tc.want || e.Error() != tc.text {
			t.Errorf("%d %s: got %#v (%v), want %#v", tc.status, tc.body, e, err, tc.want)
		}
	}
}

func TestAllSubscriptionsFollowsCursor(t *testing.T) {
	pages := map[string]string{
		"":   `{"data": [{"id": "a"}, {"id": "b"}], "next_cursor": "c1"}`,
		"c1": `{"data": [{"id": "c"}], "next_cursor": "c2"}`,
		"c2": `{"data": []}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, pages[r.URL.Query().Get("cursor")])
	}))
	defer srv.Close()
	c := New(srv.URL, "tok", WithHTTPClient(srv.Client()))
	subs, err := c.AllSubscriptions(context.Background(), ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range subs {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("walked %v", ids)
	}
}

func TestCreatedCarriesSecret(t *testing.T) {
	c, _ := newTest(t, 201, `{"id": "sub_1", "url": "https://e.com", "version": 1, "secret": "whsec_abc"}`)
	got, err := c.CreateSubscription(context.Background(), json.RawMessage(`{"url": "https://e.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "sub_1" || got.URL != "https://e.com" || got.Secret != "whsec_abc" || got.Version != 1 {
		t.Errorf("created %+v", got)
	}
}
