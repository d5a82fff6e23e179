package testkit

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// maxBody bounds what a Receiver reads of one request body.
const maxBody = 16 << 20

// Request is one request a Receiver got, as it arrived.
type Request struct {
	N      int // 1 for the first request the receiver got, 2 for the next, …
	Method string
	Path   string
	Query  string // raw query, without '?'
	Header http.Header
	Body   []byte
	At     time.Time // arrival

	ctx context.Context
}

// Context is the request's context: it is done when the client gives up
// (closes the connection, times out) or the receiver shuts down. Handlers
// that wait should select on it.
func (r Request) Context() context.Context { return r.ctx }

// Respond writes the reply to one request. req is the recorded request, its
// body already read.
type Respond func(w http.ResponseWriter, req Request)

// Receiver is a webhook endpoint for tests: an HTTP server on loopback that
// records every request and replies as its Respond says (200 with no body
// until told otherwise). It is closed when the test ends.
type Receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []Request
	arrived chan struct{} // closed and replaced on every arrival
	respond Respond
	open    atomic.Int64 // connections open to the receiver
}

// NewReceiver starts a Receiver for the test.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{
		arrived: make(chan struct{}),
		respond: Statuses(http.StatusOK),
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			r.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			r.open.Add(-1)
		}
	}
	r.srv.Start()
	t.Cleanup(func() {
		// Cancels the contexts of handlers still waiting, so Close does
		// not wait for them.
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, hr *http.Request) {
	body, err := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	if err != nil {
		// The client went away mid-body: nothing was delivered.
		return
	}
	req := Request{
		Method: hr.Method,
		Path:   hr.URL.Path,
		Query:  hr.URL.RawQuery,
		Header: hr.Header.Clone(),
		Body:   body,
		At:     time.Now(),
		ctx:    hr.Context(),
	}
	r.mu.Lock()
	req.N = len(r.reqs) + 1
	r.reqs = append(r.reqs, req)
	close(r.arrived)
	r.arrived = make(chan struct{})
	respond := r.respond
	r.mu.Unlock()
	respond(w, req)
}

// OpenConns is how many connections are open to the receiver.
func (r *Receiver) OpenConns() int64 { return r.open.Load() }

// URL is the receiver's base URL (http://127.0.0.1:port); any path works.
func (r *Receiver) URL() string { return r.srv.URL }

// Respond makes fn answer the requests that arrive from now on.
func (r *Receiver) Respond(fn Respond) {
	r.mu.Lock()
	r.respond = fn
	r.mu.Unlock()
}

// Count is the number of requests received so far.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// Requests returns the requests received so far, in order of arrival.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// WaitFor waits until at least n requests have arrived and returns them all;
// it fails the test, listing what did arrive, if that takes longer than
// timeout.
func (r *Receiver) WaitFor(t testing.TB, n int, timeout time.Duration) []Request {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		got, arrived := len(r.reqs), r.arrived
		r.mu.Unlock()
		if got >= n {
			return r.Requests()
		}
		select {
		case <-arrived:
		case <-timer.C:
			t.Fatalf("testkit: receiver got %d of %d requests within %v%s", got, n, timeout, summarize(r.Requests()))
		}
	}
}

func summarize(reqs []Request) string {
	if len(reqs) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString(":")
	for _, q := range reqs {
		fmt.Fprintf(&sb, "\n  #%d %s %s %s webhook-id=%q", q.N, q.At.Format("15:04:05.000"), q.Method, q.Path, q.Header.Get("webhook-id"))
	}
	return sb.String()
}

// Statuses answers the first request it sees with codes[0], the second with
// codes[1], and so on; the last code answers every request after that.
// Statuses(500, 500, 200) fails twice, then succeeds.
func Statuses(codes ...int) Respond {
	if len(codes) == 0 {
		panic("testkit: Statuses needs at least one status code")
	}
	var n atomic.Int64
	return func(w http.ResponseWriter, _ Request) {
		i := int(n.Add(1)) - 1
		w.WriteHeader(codes[min(i, len(codes)-1)])
	}
}

// Slow waits d, or until the request is abandoned, before next answers: an
// endpoint that is slow, or one that times the client out.
func Slow(d time.Duration, next Respond) Respond {
	return func(w http.ResponseWriter, req Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			next(w, req)
		case <-req.Context().Done():
		}
	}
}
