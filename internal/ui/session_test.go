package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/api/apitest"
	"github.com/herald-dev/herald/internal/apiclient"
)

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t *testing.T, method, u string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestSessionAndCSRF: pages need the session cookie, which is HttpOnly and
// SameSite=Strict; forms need the session's CSRF token; cross-origin posts
// are refused even with it; a bad token is refused by the API's check.
func TestSessionAndCSRF(t *testing.T) {
	st := apitest.Start(t, apitest.Options{})
	sub, err := st.Client.CreateSubscription(context.Background(), &apiclient.SubscriptionCreate{
		URL: "https://hooks.example.com/in", Description: `<script>alert("x")</script>`,
	})
	if err != nil {
		t.Fatal(err)
	}

	resp, _ := do(t, "GET", st.URL+"/ui/", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, "POST", st.URL+"/ui/login", url.Values{"token": {"wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("wrong token: %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	resp, _ = do(t, "POST", st.URL+"/ui/login", url.Values{"token": {apitest.Token}})
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") ||
		!strings.Contains(cookie, "Path=/ui/") {
		t.Fatalf("login: %d cookie %q", resp.StatusCode, cookie)
	}
	session := strings.Split(cookie, ";")[0]

	page := st.URL + "/ui/subscriptions/" + sub.ID
	resp, body = do(t, "GET", page, nil, "Cookie", session)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscription page: %d", resp.StatusCode)
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("the description is not escaped")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("security headers: %v", resp.Header)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	csrf := m[1]

	pause := url.Values{"status": {"paused"}}
	for name, form := range map[string]url.Values{"no token": pause, "wrong token": {"status": {"paused"}, "csrf": {"x" + csrf}}} {
		if resp, _ := do(t, "POST", page+"/status", form, "Cookie", session); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	form := url.Values{"status": {"paused"}, "csrf": {csrf}}
	if resp, _ := do(t, "POST", page+"/status", form, "Cookie", session, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post: %d, want 403", resp.StatusCode)
	}
	if s, _ := st.Store.Get(sub.ID); s.Status != "active" {
		t.Fatalf("a refused form changed the status to %s", s.Status)
	}
	if resp, _ := do(t, "POST", page+"/status", form, "Cookie", session, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin post with the token: %d", resp.StatusCode)
	}
	if s, _ := st.Store.Get(sub.ID); s.Status != "paused" {
		t.Errorf("status %s after pausing", s.Status)
	}

	// A token removed from the configuration ends the session.
	resp, _ = do(t, "GET", st.URL+"/ui/", nil, "Cookie", "herald_session=revoked-token")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Errorf("stale session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
