package api

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the auth failure window.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestAuthEveryRoute: every /v1 route refuses a request without a valid
// token before doing anything, and the probes need none.
func TestAuthEveryRoute(t *testing.T) {
	store := newMemStore()
	h := newHarness(t, Config{AuthFailureLimit: 1000}, Deps{Store: store})
	c := create(t, h, validSub)
	for _, rt := range routes {
		path := strings.ReplaceAll(rt.path, "{id}", c.ID)
		body := ""
		if rt.method == "POST" || rt.method == "PATCH" {
			body = `{"status": "paused"}`
		}
		if !rt.auth {
			r := h.do(rt.method, path, "", "Authorization", "")
			if r.status == http.StatusUnauthorized {
				t.Errorf("%s %s needs a token; probes must not", rt.method, rt.path)
			}
			continue
		}
		for _, tc := range []struct{ name, header, challenge string }{
			{"missing", "", `Bearer realm="herald"`},
			{"basic", "Basic dXNlcjpwYXNz", `Bearer realm="herald"`},
			{"empty bearer", "Bearer ", `Bearer realm="herald"`},
			{"wrong", "Bearer not-the-token", `Bearer realm="herald", error="invalid_token"`},
			{"prefix of token", "Bearer " + testToken[:len(testToken)-1], `Bearer realm="herald", error="invalid_token"`},
			{"token plus suffix", "Bearer " + testToken + "x", `Bearer realm="herald", error="invalid_token"`},
		} {
			r := h.do(rt.method, path, body, "Authorization", tc.header)
			wantError(t, r, http.StatusUnauthorized, codeUnauthorized, "")
			if got := r.header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("%s %s, %s: WWW-Authenticate %q, want %q", rt.method, rt.path, tc.name, got, tc.challenge)
			}
		}
	}
	if got, _ := store.Get(c.ID); got.Version != c.Version || got.Status != "active" {
		t.Errorf("unauthenticated requests changed the subscription: %+v", got)
	}
	// Each configured token works; the scheme is case-insensitive.
	for _, auth := range []string{"Bearer " + testToken, "bearer another-token", "BEARER  " + testToken} {
		if r := h.do("GET", "/v1/subscriptions", "", "Authorization", auth); r.status != http.StatusOK {
			t.Errorf("Authorization %q: %d %s", auth, r.status, r.body)
		}
	}
}

func TestNoTokensRefusesAll(t *testing.T) {
	cfg := Config{Tokens: []string{"", ""}}
	if cfg.Validate() == nil {
		t.Error("Validate accepts a config without tokens")
	}
	h := newHarness(t, cfg, Deps{Store: newMemStore()})
	for _, auth := range []string{"Bearer ", "Bearer x", ""} {
		wantError(t, h.do("GET", "/v1/subscriptions", "", "Authorization", auth), http.StatusUnauthorized, codeUnauthorized, "")
	}
}

// TestBruteForceThrottled: after the limit of 401s from one address, its
// requests get 429 until the window ends — even with the right token, so a
// guess cannot be confirmed while blocked.
func TestBruteForceThrottled(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	h := newHarness(t, Config{AuthFailureLimit: 3, AuthFailureWindow: time.Minute}, Deps{Store: newMemStore(), Now: clock.now})
	for i := range 3 {
		wantError(t, h.do("GET", "/v1/subscriptions", "", "Authorization", "Bearer guess-"+string(rune('a'+i))),
			http.StatusUnauthorized, codeUnauthorized, "")
	}
	r := h.do("GET", "/v1/subscriptions", "", "Authorization", "Bearer guess-d")
	wantError(t, r, http.StatusTooManyRequests, codeRateLimited, "")
	if r.header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After = %q, want 60", r.header.Get("Retry-After"))
	}
	wantError(t, h.do("GET", "/v1/subscriptions", ""), http.StatusTooManyRequests, codeRateLimited, "")
	// Probes are not behind auth and stay open.
	if r := h.do("GET", "/healthz", ""); r.status != http.StatusOK {
		t.Errorf("healthz while throttled: %d", r.status)
	}

	clock.advance(45 * time.Second)
	if r := h.do("GET", "/v1/subscriptions", ""); r.header.Get("Retry-After") != "15" {
		t.Errorf("Retry-After after 45s = %q, want 15", r.header.Get("Retry-After"))
	}
	clock.advance(15 * time.Second)
	if r := h.do("GET", "/v1/subscriptions", ""); r.status != http.StatusOK {
		t.Errorf("after the window: %d %s", r.status, r.body)
	}
	// A new window counts from zero.
	for range 2 {
		wantError(t, h.do("GET", "/v1/subscriptions", "", "Authorization", "Bearer nope"), http.StatusUnauthorized, codeUnauthorized, "")
	}
	if r := h.do("GET", "/v1/subscriptions", ""); r.status != http.StatusOK {
		t.Errorf("two failures in a new window blocked: %d", r.status)
	}
}

func TestFailureLimiterBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	l := newFailureLimiter(1, time.Minute, clock.now)
	for i := range maxTrackedClients + 50 {
		l.record(fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff))
	}
	if n := len(l.clients); n > maxTrackedClients {
		t.Errorf("tracking %d clients, bound %d", n, maxTrackedClients)
	}
	clock.advance(time.Minute)
	l.record("192.0.2.1")
	if n := len(l.clients); n != 1 {
		t.Errorf("after the window %d clients tracked, want expired ones swept", n)
	}
}

// TestFailureLimiterGuessesThatPassedTogether: guesses that all got past
// blocked before any was recorded are still answered as checked at most
// limit times; the rest are told how long to wait.
func TestFailureLimiterGuessesThatPassedTogether(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	l := newFailureLimiter(3, time.Minute, clock.now)
	for range 10 {
		if wait := l.blocked("192.0.2.1"); wait != 0 {
			t.Fatalf("blocked %v before any failure was recorded", wait)
		}
	}
	var checked int
	for i := range 10 {
		if i == 1 {
			clock.advance(10 * time.Second) // into the window the first failure opened
		}
		switch wait := l.record("192.0.2.1"); {
		case wait == 0:
			checked++
		case wait != 50*time.Second:
			t.Errorf("failure %d: wait %v, want the 50s left of the window", i+1, wait)
		}
	}
	if checked != 3 {
		t.Errorf("%d of 10 failures answered as checked, want the limit of 3", checked)
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":     "abc",
		"bearer abc":     "abc",
		"Bearer  abc ":   "abc",
		"Bearer":         "",
		"Bearer a b":     "",
		"Token abc":      "",
		"Basic YWJjOmRl": "",
		"":               "",
	} {
		got, ok := bearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}
