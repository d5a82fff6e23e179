package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestProbes(t *testing.T) {
	store := newMemStore()
	h := newHarness(t, Config{}, Deps{Store: store})
	if r := h.do("GET", "/healthz", "", "Authorization", ""); r.status != http.StatusOK {
		t.Errorf("healthz: %d", r.status)
	}
	if r := h.do("GET", "/readyz", "", "Authorization", ""); r.status != http.StatusOK {
		t.Errorf("readyz with a ready store: %d %s", r.status, r.body)
	}
	store.mu.Lock()
	store.ready = false
	store.mu.Unlock()
	d := wantError(t, h.do("GET", "/readyz", ""), http.StatusServiceUnavailable, codeNotReady, "")
	if !strings.Contains(d.Message, "subscriptions") {
		t.Errorf("readyz reason %q", d.Message)
	}
	if r := h.do("GET", "/healthz", ""); r.status != http.StatusOK {
		t.Errorf("healthz while not ready: %d", r.status)
	}
	// Without a metrics handler, /metrics is absent.
	wantError(t, h.do("GET", "/metrics", ""), http.StatusNotFound, codeNotFound, "")
}

func TestReadyFunc(t *testing.T) {
	var reason error = errors.New("kafka unreachable: dial tcp: connection refused")
	h := newHarness(t, Config{}, Deps{
		Store: newMemStore(),
		Ready: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("readiness check without a deadline")
			}
			return reason
		},
	})
	d := wantError(t, h.do("GET", "/readyz", ""), http.StatusServiceUnavailable, codeNotReady, "")
	if d.Message != reason.Error() {
		t.Errorf("reason %q, want %q", d.Message, reason)
	}
	reason = nil
	if r := h.do("GET", "/readyz", ""); r.status != http.StatusOK {
		t.Errorf("readyz: %d %s", r.status, r.body)
	}
}

func TestMetricsHandler(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte("herald_up 1\n"))
	})
	h := newHarness(t, Config{}, Deps{Store: newMemStore(), Metrics: metrics})
	r := h.do("GET", "/metrics", "", "Authorization", "")
	if r.status != http.StatusOK || string(r.body) != "herald_up 1\n" {
		t.Errorf("metrics: %d %q", r.status, r.body)
	}
}

// TestUnroutedJSON: the mux's own 404 and 405 replies come back as JSON
// errors like every other.
func TestUnroutedJSON(t *testing.T) {
	h := newHarness(t, Config{}, Deps{Store: newMemStore()})
	wantError(t, h.do("GET", "/v1/nothing", ""), http.StatusNotFound, codeNotFound, "")
	r := h.do("PUT", "/v1/subscriptions", `{}`)
	wantError(t, r, http.StatusMethodNotAllowed, codeMethodNotAllowed, "")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q", allow)
	}
}

// TestRedirectPassesThrough: the mux's redirect to a cleaned path is not
// turned into a JSON 404.
func TestRedirectPassesThrough(t *testing.T) {
	h := newHarness(t, Config{}, Deps{Store: newMemStore()})
	req, err := http.NewRequest("GET", h.srv.URL+"/v1/../healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Path = "/v1/../healthz" // keep the client from cleaning it
	client := h.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/healthz" {
		t.Errorf("got %d Location %q, want a redirect to /healthz", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestLogLevelAtRunTime(t *testing.T) {
	level := zap.NewAtomicLevelAt(zap.InfoLevel)
	h := newHarness(t, Config{}, Deps{Store: newMemStore(), LogLevel: level})
	if r := h.do("GET", "/debug/loglevel", "", "Authorization", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", r.status)
	}
	if r := h.do("GET", "/debug/loglevel", ""); r.status != http.StatusOK || !strings.Contains(string(r.body), `"info"`) {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	if r := h.do("PUT", "/debug/loglevel", `{"level":"debug"}`); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if level.Level() != zap.DebugLevel {
		t.Fatalf("level is %s after PUT debug", level.Level())
	}
	// Without a handler the route says it is not configured.
	h = newHarness(t, Config{}, Deps{Store: newMemStore()})
	wantError(t, h.do("GET", "/debug/loglevel", ""), http.StatusServiceUnavailable, codeNotReady, "")
}
