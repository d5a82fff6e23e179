package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// receiver is the webhook endpoint of every scenario and of the limit
// baseline: a plain net/http server on loopback that reads the body and
// answers 204. The path picks what else it does, so that the throughput
// path does nothing more than the baseline does:
//
//	/          count
//	/lat/…     also record produce→ack latency from the body's sent_ns
//	/retry/…   answer 500 to a delivery's first attempt, time its second
//	/slow/…    hold the request until release
type receiver struct {
	srv *http.Server
	url string

	requests atomic.Int64
	first    atomic.Int64 // unix ns of the first request since reset
	last     atomic.Int64 // unix ns of the last answer since reset
	inFlight atomic.Int64

	lat   latencyLog
	retry retryLog

	slowMu  sync.Mutex
	release chan struct{}
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String(), release: make(chan struct{})}
	r.retry.seen = make(map[string]time.Time)
	r.retry.second = make(map[string]time.Time)
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() {
	r.releaseSlow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// reset zeroes the counters between scenarios.
func (r *receiver) reset() {
	r.requests.Store(0)
	r.first.Store(0)
	r.last.Store(0)
}

// span is the time from the first request to the last answer since reset.
func (r *receiver) span() time.Duration {
	f, l := r.first.Load(), r.last.Load()
	if f == 0 || l < f {
		return 0
	}
	return time.Duration(l - f)
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now().UnixNano()
	r.first.CompareAndSwap(0, now)
	r.requests.Add(1)
	p := req.URL.Path
	status := http.StatusNoContent
	switch {
	case strings.HasPrefix(p, "/lat/"):
		buf := bodyPool.Get().(*bytes.Buffer)
		buf.Reset()
		_, _ = buf.ReadFrom(req.Body)
		r.lat.record(now, buf.Bytes())
		bodyPool.Put(buf)
	case strings.HasPrefix(p, "/retry/"):
		_, _ = io.Copy(io.Discard, req.Body)
		if !r.retry.arrive(req.Header.Get("webhook-id"), now) {
			status = http.StatusInternalServerError
		}
	case strings.HasPrefix(p, "/slow/"):
		_, _ = io.Copy(io.Discard, req.Body)
		r.inFlight.Add(1)
		r.slowMu.Lock()
		release := r.release
		r.slowMu.Unlock()
		select {
		case <-release:
		case <-req.Context().Done():
		}
		r.inFlight.Add(-1)
	default:
		_, _ = io.Copy(io.Discard, req.Body)
	}
	w.WriteHeader(status)
	r.last.Store(time.Now().UnixNano())
}

// releaseSlow lets every held /slow/ request answer, and the ones after it
// pass straight through.
func (r *receiver) releaseSlow() {
	r.slowMu.Lock()
	defer r.slowMu.Unlock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

// holdSlow makes /slow/ requests wait again.
func (r *receiver) holdSlow() {
	r.slowMu.Lock()
	defer r.slowMu.Unlock()
	select {
	case <-r.release:
		r.release = make(chan struct{})
	default:
	}
}

// latencyLog records produce→ack latency of events sent at or after from.
type latencyLog struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram
	from     int64 // unix ns; earlier events are warm-up
	received int64 // measured events received
}

func newLatencyHistogram() *hdrhistogram.Histogram {
	// 1µs to 2 minutes, 3 significant digits; values in µs.
	return hdrhistogram.New(1, int64(2*time.Minute/time.Microsecond), 3)
}

func (l *latencyLog) start(from time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hist = newLatencyHistogram()
	l.from = from.UnixNano()
	l.received = 0
}

// stop returns the histogram and the measured events received, and stops
// recording.
func (l *latencyLog) stop() (*hdrhistogram.Histogram, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, n := l.hist, l.received
	l.hist = nil
	return h, n
}

func (l *latencyLog) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.received
}

func (l *latencyLog) record(now int64, body []byte) {
	sent, ok := sentNanos(body)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hist == nil || sent < l.from {
		return
	}
	l.received++
	_ = l.hist.RecordValue(max(1, (now-sent)/int64(time.Microsecond)))
}

var sentKey = []byte(`"sent_ns":`)

// sentNanos finds the producer's timestamp in an event or its envelope
// without decoding the JSON.
func sentNanos(body []byte) (int64, bool) {
	i := bytes.Index(body, sentKey)
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(sentKey):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// retryLog fails each delivery's first attempt and times its second.
type retryLog struct {
	mu     sync.Mutex
	seen   map[string]time.Time // first attempt
	second map[string]time.Time
	extra  int // attempts after the second: should be none
}

// arrive reports whether the attempt succeeds: not the first one.
func (l *retryLog) arrive(id string, now int64) bool {
	t := time.Unix(0, now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[id]; !ok {
		l.seen[id] = t
		return false
	}
	if _, ok := l.second[id]; ok {
		l.extra++
		return true
	}
	l.second[id] = t
	return true
}

func (l *retryLog) counts() (first, second int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen), len(l.second)
}
