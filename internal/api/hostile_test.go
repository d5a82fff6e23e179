package api

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hostile clients of the admin API: every attack gets a JSON error with the
// right status, the server reads no more than its limit, and nothing is
// stored.

// TestHostileBodies sends subscription bodies built to hurt: each is refused
// with its status and error code, and the store stays empty.
func TestHostileBodies(t *testing.T) {
	store := newMemStore()
	h := newHarness(t, Config{MaxBodyBytes: 64 << 10}, Deps{Store: store})
	const url = `"url":"https://example.com/hook"`
	tests := []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"CR LF in a header value", `{` + url + `,"headers":{"x-team":"a\r\nX-Injected: 1"}}`, 400, codeValidation, "headers"},
		{"LF alone", `{` + url + `,"headers":{"x-team":"a\nb"}}`, 400, codeValidation, "headers"},
		{"NUL in a header value", `{` + url + `,"headers":{"x-team":"a\u0000b"}}`, 400, codeValidation, "headers"},
		{"CR LF in a header name", `{` + url + `,"headers":{"x-team\r\nX-Injected":"1"}}`, 400, codeValidation, "headers"},
		{"colon in a header name", `{` + url + `,"headers":{"x-team: 1\r\nx":"1"}}`, 400, codeValidation, "headers"},
		{"signature header forged", `{` + url + `,"headers":{"Webhook-Signature":"v1,forged"}}`, 400, codeValidation, "headers"},
		{"host header", `{` + url + `,"headers":{"Host":"internal.example"}}`, 400, codeValidation, "headers"},
		{"CR LF in the URL", `{"url":"https://example.com/\r\nX-Injected: 1"}`, 400, codeValidation, "url"},
		{"JSON nested 5,000 deep", `{` + url + `,"description":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, 400, codeValidation, "description"},
		{"JSON nested past the parser's depth", `{` + url + `,"description":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, 400, codeInvalidRequest, ""},
		{"over the body limit", `{` + url + `,"description":"` + strings.Repeat("x", 65<<10) + `"}`, 413, codeBodyTooLarge, ""},
		{"not JSON", "\xff\xfe\x00garbage", 400, codeInvalidRequest, ""},
		{"two objects", `{` + url + `}{` + url + `}`, 400, codeInvalidRequest, ""},
		{"read-only id", `{` + url + `,"id":"sub_mine"}`, 400, codeValidation, "id"},
		{"huge number", `{` + url + `,"timeout_ms":1e999}`, 400, codeValidation, "timeout_ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", "/v1/subscriptions", tt.body)
			wantError(t, r, tt.status, tt.code, tt.field)
		})
	}
	if n := len(store.List()); n != 0 {
		t.Fatalf("%d subscriptions stored from hostile bodies", n)
	}

	// The same injections through PATCH leave the subscription as it was.
	c := create(t, h, validSub)
	for _, body := range []string{
		`{"headers":{"x-team":"a\r\nX-Injected: 1"}}`,
		`{"headers":{"x\r\ny":"1"}}`,
		`{"url":"https://example.com/\r\n"}`,
		`{"description":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
	} {
		if r := h.do("PATCH", "/v1/subscriptions/"+c.ID, body); r.status != http.StatusBadRequest {
			t.Errorf("PATCH %.40q: %d %s, want 400", body, r.status, r.body)
		}
	}
	got, _ := store.Get(c.ID)
	for k, v := range got.Headers {
		if strings.ContainsAny(k+v, "\r\n") {
			t.Fatalf("stored header %q: %q", k, v)
		}
	}
}

// endless is a request body that never ends, counting what was read.
type endless struct{ read atomic.Int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	e.read.Add(int64(len(p)))
	return len(p), nil
}

// TestEndlessBody streams a body without a Content-Length that never ends:
// the server answers 413 after reading about its limit, instead of reading
// (and holding) the stream.
func TestEndlessBody(t *testing.T) {
	h := newHarness(t, Config{MaxBodyBytes: 64 << 10}, Deps{Store: newMemStore()})
	for _, path := range []string{"/v1/subscriptions", "/v1/events"} {
		body := &endless{}
		req, err := http.NewRequest("POST", h.srv.URL+path, io.MultiReader(strings.NewReader(`{"description":"`), body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Do(req)
		if err != nil {
			// The server may hang up while the client is still writing; what
			// matters is that it stopped reading.
			t.Logf("%s: %v after sending %d bytes", path, err, body.read.Load())
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge && resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s: %d %s, want 413", path, resp.StatusCode, b)
			}
		}
		// The client may have sent a few socket buffers more than the
		// server read; an unbounded read would be gigabytes by now.
		if n := body.read.Load(); n > 16<<20 {
			t.Errorf("%s: the client got to send %d bytes of a 64 KiB-limited body", path, n)
		}
	}
}

// TestConcurrentGuessesAreLimited: a brute force that sends its guesses all
// at once gets no more 401s than one that sends them one by one — the
// limit holds under concurrency — and once it is reached, even the right
// token gets 429.
func TestConcurrentGuessesAreLimited(t *testing.T) {
	const limit = 5
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	h := newHarness(t, Config{AuthFailureLimit: limit, AuthFailureWindow: time.Minute}, Deps{Store: newMemStore(), Now: clock.now})
	const guesses = 64
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = make(map[int]int)
	)
	start := make(chan struct{})
	for i := range guesses {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest("GET", h.srv.URL+"/v1/subscriptions", nil)
			req.Header.Set("Authorization", "Bearer guess-"+strings.Repeat("x", i))
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d concurrent guesses: %v", guesses, statuses)
	if statuses[http.StatusUnauthorized] > limit {
		t.Errorf("%d guesses were checked (401) with a limit of %d per window", statuses[http.StatusUnauthorized], limit)
	}
	if statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != guesses {
		t.Errorf("statuses %v, want only 401 and 429", statuses)
	}
	wantError(t, h.do("GET", "/v1/subscriptions", ""), http.StatusTooManyRequests, codeRateLimited, "")
}
