package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/herald-dev/herald/internal/apiclient"
)

const testToken = "s3cret-test-token"

type harness struct {
	t      *testing.T
	srv    *httptest.Server
	client *apiclient.Client
}

// newHarness serves the API over real HTTP, logging at debug level into
// the test log.
func newHarness(t *testing.T, cfg Config, deps Deps) *harness {
	t.Helper()
	if cfg.Tokens == nil {
		cfg.Tokens = []string{"another-token", testToken}
	}
	if deps.Logger == nil {
		deps.Logger = zaptest.NewLogger(t)
	}
	srv := httptest.NewServer(New(cfg, deps))
	t.Cleanup(srv.Close)
	return &harness{
		t:      t,
		srv:    srv,
		client: apiclient.New(srv.URL, testToken, apiclient.WithHTTPClient(srv.Client())),
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("reply %d %q: %v", r.status, r.body, err)
	}
}

// apiError is the error object of an error reply, checked for shape.
func (r reply) apiError(t *testing.T) errorDetail {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error content-type = %q, want application/json", ct)
	}
	var env map[string]json.RawMessage
	r.decode(t, &env)
	if len(env) != 1 || env["error"] == nil {
		t.Fatalf("error reply %q: want exactly {\"error\": …}", r.body)
	}
	var d errorDetail
	if err := json.Unmarshal(env["error"], &d); err != nil {
		t.Fatal(err)
	}
	if d.Code == "" || d.Message == "" {
		t.Errorf("error reply %q lacks code or message", r.body)
	}
	return d
}

// do sends a request with the test token; headers are name, value pairs
// and override it ("Authorization", "" removes it).
func (h *harness) do(method, path, body string, headers ...string) reply {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantError checks an error reply's status, code and field.
func wantError(t *testing.T, r reply, status int, code, field string) errorDetail {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	d := r.apiError(t)
	if d.Code != code || d.Field != field {
		t.Errorf("error = %+v, want code %q field %q", d, code, field)
	}
	return d
}
