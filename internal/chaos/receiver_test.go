package chaos

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// fault is how the receiver misbehaves.
type fault int32

const (
	behave fault = iota
	// fail500 answers 500 to half the requests, at random.
	fail500
	// dropConnections hangs up on a third of the requests before answering
	// and on another third after "200 OK" and part of the body; the
	// second kind counts as acknowledged, since the status was sent.
	dropConnections
)

// receiver is the subscriber: it acknowledges with 200 and counts, per
// webhook-id, how many times it did.
type receiver struct {
	srv   *httptest.Server
	fault atomic.Int32
	// delay holds every answer back a little, so deliveries are in flight
	// when a fault strikes.
	delay time.Duration

	verifier atomic.Pointer[webhook.Verifier]
	badSigs  atomic.Int64

	requests atomic.Int64
	refused  atomic.Int64 // 500s and dropped connections

	mu    sync.Mutex
	acks  map[string]int
	first map[string]time.Time // when each id was first acknowledged
}

func newReceiver(t *testing.T, delay time.Duration) *receiver {
	t.Helper()
	r := &receiver{acks: make(map[string]int), first: make(map[string]time.Time), delay: delay}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

func (r *receiver) URL() string { return r.srv.URL }

func (r *receiver) setFault(f fault) { r.fault.Store(int32(f)) }

// verify checks every later request's signature with secret.
func (r *receiver) verify(t *testing.T, secret string) {
	t.Helper()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatalf("receiver: %v", err)
	}
	r.verifier.Store(v)
}

func (r *receiver) serve(w http.ResponseWriter, hr *http.Request) {
	r.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(hr.Body, 1<<20))
	if err != nil {
		return
	}
	id := hr.Header.Get(webhook.HeaderID)
	if v := r.verifier.Load(); v != nil {
		if err := v.Verify(hr.Header, body); err != nil {
			r.badSigs.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	switch fault(r.fault.Load()) {
	case fail500:
		if rand.IntN(2) == 0 {
			r.refused.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	case dropConnections:
		switch rand.IntN(3) {
		case 0:
			r.refused.Add(1)
			hangUp(w, "")
			return
		case 1:
			r.ack(id)
			hangUp(w, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\nacknowledged, but the body is cut")
			return
		}
	}
	r.ack(id)
	w.WriteHeader(http.StatusOK)
}

// hangUp writes raw, if any, and closes the connection under the handler.
func hangUp(w http.ResponseWriter, raw string) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if raw != "" {
		_, _ = buf.WriteString(raw)
		_ = buf.Flush()
	}
	_ = conn.Close()
}

func (r *receiver) ack(id string) {
	r.mu.Lock()
	if r.acks[id] == 0 {
		r.first[id] = time.Now()
	}
	r.acks[id]++
	r.mu.Unlock()
}

// count is how many distinct ids of want were acknowledged.
func (r *receiver) count(want map[string]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id := range want {
		if r.acks[id] > 0 {
			n++
		}
	}
	return n
}

// tally compares the acknowledgements with the expected ids.
func (r *receiver) tally(want map[string]bool) tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	var tl tally
	tl.expected = len(want)
	for id := range want {
		n := r.acks[id]
		if n == 0 {
			tl.missing = append(tl.missing, id)
			continue
		}
		tl.acked++
		if n > 1 {
			tl.duplicates += n - 1
			tl.duplicated = append(tl.duplicated, r.first[id])
		}
	}
	for id := range r.acks {
		if !want[id] {
			tl.unexpected++
		}
	}
	tl.requests = r.requests.Load()
	tl.refused = r.refused.Load()
	tl.badSigs = r.badSigs.Load()
	return tl
}

// tally is what the receiver saw of one scenario.
type tally struct {
	expected, acked, duplicates, unexpected int
	requests, refused, badSigs              int64
	missing                                 []string
	// duplicated holds when each duplicated delivery was first
	// acknowledged.
	duplicated []time.Time
}
