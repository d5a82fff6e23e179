package testkit

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url, body string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverRecordsRequests(t *testing.T) {
	r := NewReceiver(t)
	before := time.Now()
	if got := post(t, r.URL()+"/hooks/a?x=1", `{"n":1}`, map[string]string{"webhook-id": "msg_1"}); got != http.StatusOK {
		t.Fatalf("default reply = %d, want 200", got)
	}
	post(t, r.URL()+"/hooks/b", `{"n":2}`, nil)

	if r.Count() != 2 {
		t.Fatalf("Count = %d, want 2", r.Count())
	}
	reqs := r.Requests()
	first := reqs[0]
	if first.N != 1 || first.Method != http.MethodPost || first.Path != "/hooks/a" || first.Query != "x=1" ||
		string(first.Body) != `{"n":1}` || first.Header.Get("webhook-id") != "msg_1" {
		t.Fatalf("first request recorded as %+v", first)
	}
	if first.At.Before(before) || reqs[1].At.Before(first.At) {
		t.Fatalf("arrival times out of order: %v, %v (sent after %v)", first.At, reqs[1].At, before)
	}
	if reqs[1].N != 2 || reqs[1].Path != "/hooks/b" {
		t.Fatalf("second request recorded as %+v", reqs[1])
	}

	// Requests is a copy: the caller cannot rewrite the record.
	reqs[0].Path = "changed"
	if r.Requests()[0].Path != "/hooks/a" {
		t.Fatal("Requests returned the receiver's own slice")
	}
}

func TestReceiverStatuses(t *testing.T) {
	r := NewReceiver(t)
	r.Respond(Statuses(500, 503, 200))
	var got []int
	for range 5 {
		got = append(got, post(t, r.URL(), "x", nil))
	}
	want := []int{500, 503, 200, 200, 200}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", got, want)
		}
	}
}

func TestReceiverCustomRespond(t *testing.T) {
	r := NewReceiver(t)
	r.Respond(func(w http.ResponseWriter, req Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	resp, err := http.Post(r.URL(), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("got %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestReceiverWaitFor(t *testing.T) {
	r := NewReceiver(t)
	go func() {
		for range 3 {
			time.Sleep(20 * time.Millisecond)
			resp, err := http.Post(r.URL(), "text/plain", strings.NewReader("x"))
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	reqs := r.WaitFor(t, 3, 10*time.Second)
	if len(reqs) != 3 {
		t.Fatalf("WaitFor returned %d requests, want 3", len(reqs))
	}
}

func TestReceiverWaitForTimesOut(t *testing.T) {
	r := NewReceiver(t)
	post(t, r.URL(), "only one", nil)
	rec := newRecorder(t)
	start := time.Now()
	inGoroutine(func() { r.WaitFor(rec, 2, 100*time.Millisecond) })
	if !rec.failed() {
		t.Fatal("WaitFor(2) with one request did not fail the test")
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Fatalf("WaitFor gave up after %v, want about 100ms", d)
	}
}

// A handler that outwaits its client must not keep the test from ending.
func TestReceiverSlowHandlerDoesNotBlockCleanup(t *testing.T) {
	start := time.Now()
	t.Run("slow", func(t *testing.T) {
		r := NewReceiver(t)
		r.Respond(Slow(time.Minute, Statuses(200)))
		client := &http.Client{Timeout: 100 * time.Millisecond}
		if resp, err := client.Post(r.URL(), "text/plain", strings.NewReader("x")); err == nil {
			resp.Body.Close()
			t.Fatalf("got %d from a handler that sleeps a minute", resp.StatusCode)
		}
		r.WaitFor(t, 1, time.Second)
		// Another request still in the handler when the test ends.
		go func() {
			resp, err := http.Post(r.URL(), "text/plain", strings.NewReader("y"))
			if err == nil {
				resp.Body.Close()
			}
		}()
		r.WaitFor(t, 2, 5*time.Second)
	})
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("test with a slow handler took %v to end", d)
	}
}

func TestSlowAnswersAfterDelay(t *testing.T) {
	r := NewReceiver(t)
	r.Respond(Slow(150*time.Millisecond, Statuses(202)))
	start := time.Now()
	if got := post(t, r.URL(), "x", nil); got != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", got)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("answered after %v, before the 150ms delay", d)
	}
}
