package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// newTestClient returns a Client that may reach the test servers on
// 127.0.0.1, and closes its connections when the test ends.
func newTestClient(t *testing.T, opts ...Option) *Client {
	t.Helper()
	c := NewClient(append([]Option{AllowPrivateNetworks(true)}, opts...)...)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newHangingServer never answers: it reads the request and waits until the
// client goes away or the test ends.
func newHangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	stop := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // runs before srv.Close
	return srv
}

func requestTo(t *testing.T, url string) *Request {
	t.Helper()
	sub := testSub()
	sub.URL = url
	sub.Headers = map[string]string{"x-team": "billing"}
	req, err := Build(testEvent(`{"id":"ord_1"}`), sub, "msg_test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestDoDeliversSignedRequest(t *testing.T) {
	verifier, err := webhook.NewVerifier(secretString(testKey))
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		method, ua, team string
		verifyErr        error
	}
	got := make(chan seen, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := verifier.VerifyRequest(r, 0)
		got <- seen{r.Method, r.UserAgent(), r.Header.Get("x-team"), err}
		if err == nil && !strings.Contains(string(body), `"ord_1"`) {
			t.Errorf("body %s", body)
		}
		w.WriteHeader(http.StatusNoContent)
	})

	res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
	if res.Class != Delivered || res.Status != 204 || res.Err != nil {
		t.Fatalf("result = %+v, want delivered 204", res)
	}
	if res.Latency <= 0 {
		t.Errorf("latency = %v", res.Latency)
	}
	s := <-got
	if s.verifyErr != nil {
		t.Errorf("receiver could not verify: %v", s.verifyErr)
	}
	if s.method != http.MethodPost || s.ua != "herald/"+Version || s.team != "billing" {
		t.Errorf("request: %+v", s)
	}
}

func TestDoUserAgentOption(t *testing.T) {
	ua := make(chan string, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { ua <- r.UserAgent() })
	req := requestTo(t, srv.URL)
	newTestClient(t, WithUserAgent("herald-test/1")).Do(context.Background(), req)
	if got := <-ua; got != "herald-test/1" {
		t.Errorf("user-agent = %q", got)
	}
	if got := req.Header.Get("user-agent"); got != "herald/"+Version {
		t.Errorf("Do changed the Request's header to %q", got)
	}
}

func TestDoReusesConnections(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})

	c := newTestClient(t)
	for i := range 5 {
		if res := c.Do(context.Background(), requestTo(t, srv.URL)); res.Class != Delivered {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1 kept alive", n)
	}
}

func TestDoStatusClasses(t *testing.T) {
	tests := []struct {
		status int
		class  Class
	}{
		{200, Delivered}, {201, Delivered}, {202, Delivered}, {299, Delivered},
		{400, Retryable}, {401, Retryable}, {404, Retryable}, {408, Retryable},
		{409, Retryable}, {500, Retryable}, {502, Retryable}, {504, Retryable},
		{410, Gone},
	}
	for _, tt := range tests {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			w.Write([]byte("  the\nreason  "))
		})
		res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
		if res.Class != tt.class || res.Status != tt.status {
			t.Errorf("%d: class %v status %d, want %v", tt.status, res.Class, res.Status, tt.class)
		}
		if string(res.Body) != "  the\nreason  " {
			t.Errorf("%d: body %q", tt.status, res.Body)
		}
		if tt.class == Delivered {
			if res.Err != nil {
				t.Errorf("%d: err %v", tt.status, res.Err)
			}
			continue
		}
		var se *StatusError
		if !errors.As(res.Err, &se) || se.Status != tt.status {
			t.Errorf("%d: err %v, want *StatusError", tt.status, res.Err)
		} else if want := "HTTP " + strconv.Itoa(tt.status) + ": the reason"; se.Error() != want {
			t.Errorf("%d: message %q", tt.status, se.Error())
		}
	}
}

func TestDoDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/in", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	srv := newServer(t, mux.ServeHTTP)

	res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL+"/in"))
	if res.Class != Retryable || res.Status != http.StatusTemporaryRedirect {
		t.Fatalf("result = %+v, want a retryable 307", res)
	}
	if !strings.Contains(res.Err.Error(), "redirect not followed: /elsewhere") {
		t.Errorf("error %q does not name the Location", res.Err)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("redirect followed %d times", n)
	}
}

func TestDoRetryAfter(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		min, max   time.Duration
	}{
		{"429 seconds", 429, "120", 120 * time.Second, 120 * time.Second},
		{"503 http-date", 503, date, 85 * time.Second, 91 * time.Second},
		{"429 date in the past", 429, "Wed, 21 Oct 2015 07:28:00 GMT", 0, 0},
		{"429 capped at a day", 429, "999999999", 24 * time.Hour, 24 * time.Hour},
		{"429 garbage", 429, "soon", 0, 0},
		{"500 not honoured", 500, "120", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tt.retryAfter)
				w.WriteHeader(tt.status)
			})
			res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
			if res.Class != Retryable {
				t.Errorf("class %v", res.Class)
			}
			if res.RetryAfter < tt.min || res.RetryAfter > tt.max {
				t.Errorf("RetryAfter = %v, want in [%v, %v]", res.RetryAfter, tt.min, tt.max)
			}
		})
	}
}

func TestDoAbortHeader(t *testing.T) {
	for _, tt := range []struct {
		status int
		value  string
		want   bool
		class  Class
	}{
		{400, "abort", true, Retryable},
		{500, " Abort ", true, Retryable},
		{200, "abort", true, Delivered},
		{400, "retry", false, Retryable},
	} {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("webhook-delivery", tt.value)
			w.WriteHeader(tt.status)
		})
		res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
		if res.Aborted != tt.want || res.Class != tt.class {
			t.Errorf("%d %q: aborted %v class %v, want %v %v", tt.status, tt.value, res.Aborted, res.Class, tt.want, tt.class)
		}
	}
}

func TestDoCapsEndlessBody(t *testing.T) {
	stopped := make(chan int64, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		var sent int64
		defer func() { stopped <- sent }()
		w.WriteHeader(500)
		for {
			n, err := w.Write(chunk)
			sent += int64(n)
			if err != nil || sent > 1<<30 {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	req := requestTo(t, srv.URL)
	req.Timeout = time.Minute

	start := time.Now()
	res := newTestClient(t, MaxResponseBytes(1000)).Do(context.Background(), req)
	if len(res.Body) != 1000 {
		t.Fatalf("body is %d bytes, want the 1000-byte cap", len(res.Body))
	}
	if res.Status != 500 || res.Class != Retryable {
		t.Errorf("result %v %v", res.Status, res.Class)
	}
	select {
	case sent := <-stopped:
		// The socket buffers hold a few MiB; the point is that the client
		// hung up instead of draining to the server's 1 GiB.
		if sent > 256<<20 {
			t.Errorf("server sent %d bytes before the client hung up", sent)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client kept the endless response open")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Do took %v", d)
	}
}

func TestDoDefaultBodyCap(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("y"), 100<<10))
	})
	res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
	if res.Class != Delivered || len(res.Body) != 64<<10 {
		t.Errorf("class %v, body %d bytes, want delivered and 64 KiB", res.Class, len(res.Body))
	}
}

func TestDoTimeoutWaitingForResponse(t *testing.T) {
	srv := newHangingServer(t)
	req := requestTo(t, srv.URL)
	req.Timeout = 200 * time.Millisecond
	start := time.Now()
	res := newTestClient(t).Do(context.Background(), req)
	assertNetworkError(t, res, StageTimeout)
	if !strings.Contains(res.Err.Error(), "waiting for the response") {
		t.Errorf("error %q does not say where it timed out", res.Err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do took %v with a 200ms timeout", d)
	}
}

// The request body fills the socket buffers of a server that never reads,
// and the write blocks until the timeout.
func TestDoTimeoutServerNeverReads(t *testing.T) {
	req := requestTo(t, "http://"+testkit.SilentListener(t)+"/")
	req.Body = bytes.Repeat([]byte("z"), 32<<20)
	req.Timeout = 300 * time.Millisecond
	res := newTestClient(t).Do(context.Background(), req)
	assertNetworkError(t, res, StageTimeout)
	if !strings.Contains(res.Err.Error(), "sending the request") {
		t.Errorf("error %q does not say it was sending", res.Err)
	}
}

func TestDoConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := newTestClient(t).Do(context.Background(), requestTo(t, "http://"+addr+"/"))
	assertNetworkError(t, res, StageDial)
}

func TestDoConnectionDroppedBeforeResponse(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	})
	res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
	assertNetworkError(t, res, StageRead)
}

func TestDoDNSFailure(t *testing.T) {
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	res := newTestClient(t, WithResolver(resolver)).Do(context.Background(), requestTo(t, "http://nowhere.invalid/"))
	assertNetworkError(t, res, StageDNS)
	var dnsErr *net.DNSError
	if !errors.As(res.Err, &dnsErr) {
		t.Errorf("error %v does not wrap the *net.DNSError", res.Err)
	}

	empty := func(context.Context, string) ([]netip.Addr, error) { return nil, nil }
	res = newTestClient(t, WithResolver(empty)).Do(context.Background(), requestTo(t, "http://empty.invalid/"))
	assertNetworkError(t, res, StageDNS)
}

func TestDoTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
	assertNetworkError(t, res, StageTLS)

	// A plain HTTP server answers the ClientHello with garbage.
	plain := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	res = newTestClient(t).Do(context.Background(), requestTo(t, strings.Replace(plain.URL, "http:", "https:", 1)))
	assertNetworkError(t, res, StageTLS)

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	res = newTestClient(t, WithTLSConfig(&tls.Config{RootCAs: pool})).Do(context.Background(), requestTo(t, srv.URL))
	if res.Class != Delivered {
		t.Errorf("with the server's CA: %+v", res)
	}
}

func TestDoTLSHandshakeTimeout(t *testing.T) {
	req := requestTo(t, "https://"+testkit.SilentListener(t)+"/")
	res := newTestClient(t, TLSHandshakeTimeout(200*time.Millisecond)).Do(context.Background(), req)
	assertNetworkError(t, res, StageTLS)
}

func TestDoCanceled(t *testing.T) {
	srv := newHangingServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	res := newTestClient(t).Do(ctx, requestTo(t, srv.URL))
	assertNetworkError(t, res, StageCanceled)
}

func TestDoRefusesBadURLs(t *testing.T) {
	c := newTestClient(t)
	for _, u := range []string{"ftp://example.com/x", "://nope", "http:///path", "file:///etc/passwd", "http://[::1"} {
		req := requestTo(t, "http://example.com/")
		req.URL = u
		res := c.Do(context.Background(), req)
		if res.Class != Refused || res.Err == nil {
			t.Errorf("%q: %+v, want refused", u, res)
		}
	}
}

func TestDoTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })

	traceparent := make(chan string, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { traceparent <- r.Header.Get("traceparent") })

	ctx, parent := tp.Tracer("test").Start(context.Background(), "process orders", trace.WithSpanKind(trace.SpanKindConsumer))
	req := requestTo(t, srv.URL)
	c := newTestClient(t, WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}))
	res := c.Do(ctx, req)
	parent.End()
	if res.Class != Delivered {
		t.Fatalf("%+v", res)
	}

	var client sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = s
		}
	}
	if client == nil {
		t.Fatalf("no client span among %d ended spans", len(rec.Ended()))
	}
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span's parent = %v, want the consumer span", client.Parent().SpanID())
	}
	want := "00-" + client.SpanContext().TraceID().String() + "-" + client.SpanContext().SpanID().String() + "-01"
	if got := <-traceparent; got != want {
		t.Errorf("traceparent = %q, want the client span %q", got, want)
	}
	if req.Header.Get("traceparent") != "" {
		t.Error("Do wrote traceparent into the caller's Request")
	}
}

func assertNetworkError(t *testing.T, res Result, stage string) {
	t.Helper()
	if res.Class != Retryable {
		t.Errorf("class = %v, want retryable (err %v)", res.Class, res.Err)
	}
	if res.Status != 0 {
		t.Errorf("status = %d, want none", res.Status)
	}
	var ne *NetworkError
	if !errors.As(res.Err, &ne) {
		t.Fatalf("err = %T %v, want *NetworkError", res.Err, res.Err)
	}
	if ne.Stage != stage {
		t.Errorf("stage = %q, want %q (err %v)", ne.Stage, stage, ne)
	}
}
