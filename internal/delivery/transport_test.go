package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// The client writes requests and reads responses itself (with fasthttp's
// codec) and keeps its own connections; these tests pin down what net/http
// used to do for it.

// countingServer is an httptest server that counts the connections it
// accepts.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	conns := countConns(srv)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns
}

// countConns counts the connections srv, not started yet, will accept.
func countConns(srv *httptest.Server) *atomic.Int32 {
	conns := new(atomic.Int32)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	return conns
}

// A response header of up to 64 KiB is read, however large the pooled read
// buffer is; a larger one is refused with a read error that says why.
func TestDoLargeResponseHeader(t *testing.T) {
	for _, size := range []int{3 << 10, 20 << 10, 60 << 10} {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Large", strings.Repeat("v", size))
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte("slow down"))
		})
		res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
		if res.Status != 429 || res.RetryAfter != 7*time.Second || string(res.Body) != "slow down" {
			t.Errorf("%d-byte header: status %d, retry after %v, body %q, err %v", size, res.Status, res.RetryAfter, res.Body, res.Err)
		}
	}

	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 9 {
			w.Header().Set("X-Large-"+strconv.Itoa(i), strings.Repeat("v", 8<<10))
		}
	})
	res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
	assertNetworkError(t, res, StageRead)
	if !strings.Contains(res.Err.Error(), "response header larger than 64 KiB") {
		t.Errorf("error %q does not say the header is too large", res.Err)
	}
}

// rawServer answers every request on a connection with the bytes respond
// returns, and counts the requests it read.
func rawServer(t *testing.T, respond func(n int) string) (url string, requests *atomic.Int32) {
	t.Helper()
	requests = new(atomic.Int32)
	url = hostileListener(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			out := respond(int(requests.Add(1)))
			if out == "" {
				return // hang up without a response
			}
			if _, err := io.WriteString(conn, out); err != nil {
				return
			}
		}
	})
	return url, requests
}

// Informational responses (100, 102, 103) are skipped; the final one counts.
func TestDoInterimResponses(t *testing.T) {
	url, _ := rawServer(t, func(int) string {
		return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" +
			"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
	})
	res := newTestClient(t).Do(context.Background(), requestTo(t, url))
	if res.Class != Delivered || res.Status != 201 || string(res.Body) != "ok" {
		t.Fatalf("result %+v, want delivered 201 ok", res)
	}
}

// An endpoint that reads the request and hangs up gets it once: the client
// never sends a request again on its own, on a new connection or a reused
// one.
func TestDoNeverResendsARequestTheEndpointRead(t *testing.T) {
	url, requests := rawServer(t, func(n int) string {
		if n == 1 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
		}
		return "" // read the second request, then hang up
	})
	c := newTestClient(t)
	if res := c.Do(context.Background(), requestTo(t, url)); res.Class != Delivered {
		t.Fatalf("first: %+v", res)
	}
	res := c.Do(context.Background(), requestTo(t, url)) // on the kept-alive connection
	assertNetworkError(t, res, StageRead)
	if !strings.Contains(res.Err.Error(), "closed the connection without responding") {
		t.Errorf("error %q", res.Err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := requests.Load(); n != 2 {
		t.Fatalf("the endpoint read %d requests, want 2 (one per Do)", n)
	}

	// The same on a fresh connection.
	url, requests = rawServer(t, func(int) string { return "" })
	res = newTestClient(t).Do(context.Background(), requestTo(t, url))
	assertNetworkError(t, res, StageRead)
	time.Sleep(50 * time.Millisecond)
	if n := requests.Load(); n != 1 {
		t.Fatalf("the endpoint read %d requests, want 1", n)
	}
}

// Servers time idle keep-alive connections out (Node after 5s, nginx after
// 75s). A connection closed while idle is noticed before it is reused, so
// the next attempt does not fail for it.
func TestDoIdleConnectionClosedByEndpoint(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	conns := countConns(srv)
	srv.Start()
	t.Cleanup(srv.Close)

	c := newTestClient(t)
	for i := range 3 {
		if res := c.Do(context.Background(), requestTo(t, srv.URL)); res.Class != Delivered {
			t.Fatalf("attempt %d: %v %v", i, res.Class, res.Err)
		}
		time.Sleep(200 * time.Millisecond) // the server closes the idle connection
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// If a dead kept-alive connection is taken anyway (the endpoint reset it
// just then), the write fails before a byte goes out, and the request goes
// on a new connection: it was not sent, so this is no resend.
func TestDoReplacesADeadConnectionBeforeSending(t *testing.T) {
	checkIdleConn = func(net.Conn) bool { return true }
	t.Cleanup(func() { checkIdleConn = connUsable })

	var requests atomic.Int32
	resetAfterFirst := make(chan net.Conn, 1)
	url := hostileListener(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		requests.Add(1)
		io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
		// Reset the connection (RST, not FIN) once the response is out.
		conn.(*net.TCPConn).SetLinger(0)
		select {
		case resetAfterFirst <- conn:
		default:
		}
	})
	c := newTestClient(t)
	if res := c.Do(context.Background(), requestTo(t, url)); res.Class != Delivered {
		t.Fatalf("first: %+v", res)
	}
	<-resetAfterFirst
	time.Sleep(100 * time.Millisecond) // the RST has arrived
	res := c.Do(context.Background(), requestTo(t, url))
	if res.Class != Delivered {
		t.Fatalf("second: %v %v, want delivered on a new connection", res.Class, res.Err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("the endpoint read %d requests, want 2", n)
	}
}

func TestConnUsable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (client, server net.Conn) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}

	quiet, qs := dial()
	defer quiet.Close()
	defer qs.Close()
	if !connUsable(quiet) {
		t.Error("an open, quiet connection is not usable")
	}

	closed, cs := dial()
	defer closed.Close()
	cs.Close()
	time.Sleep(20 * time.Millisecond)
	if connUsable(closed) {
		t.Error("a connection the peer closed is usable")
	}

	talking, ts := dial()
	defer talking.Close()
	defer ts.Close()
	ts.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n"))
	time.Sleep(20 * time.Millisecond)
	if connUsable(talking) {
		t.Error("a connection with unrequested bytes is usable")
	}
	// connUsable consumed nothing.
	talking.SetReadDeadline(time.Now().Add(time.Second))
	if b, _ := bufio.NewReader(talking).ReadString('\n'); b != "HTTP/1.1 408 Request Timeout\r\n" {
		t.Errorf("read %q after the check", b)
	}
}

// Whether a connection is kept after a response: only when the response
// ended where it said it would and nothing asked to close.
func TestDoKeepsConnectionsOnlyAfterCompleteResponses(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		raw     string // instead of handler: the raw response
		conns   int32  // for 3 sequential requests
		body    int
	}{
		{name: "content-length", handler: func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }, conns: 1, body: 5},
		{name: "chunked", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("hel"))
			w.(http.Flusher).Flush()
			w.Write([]byte("lo"))
		}, conns: 1, body: 5},
		{name: "body of exactly the cap", handler: func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("x"), 100)) }, conns: 1, body: 100},
		{name: "body over the cap", handler: func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("x"), 101)) }, conns: 3, body: 100},
		{name: "chunked over the cap", handler: func(w http.ResponseWriter, r *http.Request) {
			for range 3 {
				w.Write(bytes.Repeat([]byte("x"), 60))
				w.(http.Flusher).Flush()
			}
		}, conns: 3, body: 100},
		{name: "connection: close", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		}, conns: 3, body: 3},
		{name: "HTTP/1.0", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", conns: 3, body: 2},
		{name: "no length, read to close", raw: "HTTP/1.1 200 OK\r\n\r\nuntil close", conns: 3, body: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var url string
			var conns *atomic.Int32
			if tt.raw != "" {
				conns = new(atomic.Int32)
				url = hostileListener(t, func(conn net.Conn) {
					conns.Add(1)
					readRequest(conn)
					io.WriteString(conn, tt.raw)
				})
			} else {
				var srv *httptest.Server
				srv, conns = countingServer(t, tt.handler)
				url = srv.URL
			}
			c := newTestClient(t, MaxResponseBytes(100))
			for i := range 3 {
				res := c.Do(context.Background(), requestTo(t, url))
				if res.Class != Delivered || len(res.Body) != tt.body {
					t.Fatalf("attempt %d: %v, %d bytes of body (err %v), want delivered and %d", i, res.Class, len(res.Body), res.Err, tt.body)
				}
			}
			if n := conns.Load(); n != tt.conns {
				t.Errorf("%d connections for 3 requests, want %d", n, tt.conns)
			}
		})
	}
}

// At most MaxIdleConnsPerHost connections stay open once a burst is over.
func TestDoIdleConnectionsPerHost(t *testing.T) {
	const burst = 6
	var arrived sync.WaitGroup
	arrived.Add(burst)
	release := make(chan struct{})
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release
	})
	c := newTestClient(t, MaxIdleConnsPerHost(2))
	var done sync.WaitGroup
	for range burst {
		done.Add(1)
		go func() {
			defer done.Done()
			if res := c.Do(context.Background(), requestTo(t, srv.URL)); res.Class != Delivered {
				t.Errorf("%v %v", res.Class, res.Err)
			}
		}()
	}
	arrived.Wait()
	close(release)
	done.Wait()
	if n := conns.Load(); n != burst {
		t.Errorf("%d connections for %d concurrent requests", n, burst)
	}
	tgt, _ := parseTarget(srv.URL)
	if n := c.pool.idleCount(tgt.key); n != 2 {
		t.Errorf("%d idle connections kept, want 2", n)
	}
}

func TestConnPool(t *testing.T) {
	key := poolKey{host: "example.test"}
	p := newConnPool(2, 64, time.Hour)
	var closed []net.Conn
	conns := make([]*pconn, 3)
	for i := range conns {
		a, b := net.Pipe()
		closed = append(closed, b)
		conns[i] = newPconn(a, key)
		p.put(conns[i])
	}
	if n := p.idleCount(key); n != 2 {
		t.Fatalf("%d idle, want the limit of 2", n)
	}
	if _, err := conns[2].conn.Write([]byte("x")); err == nil {
		t.Error("the connection over the limit was not closed")
	}
	if got := p.get(key); got != conns[1] {
		t.Error("get did not return the most recently used connection")
	}
	if p.get(poolKey{https: true, host: "example.test"}) != nil {
		t.Error("an http connection was handed out for https")
	}
	p.closeIdle()
	if p.get(key) != nil || p.idleCount(key) != 0 {
		t.Error("closeIdle left a connection")
	}
	for _, c := range closed {
		c.Close()
	}
	conns[1].conn.Close()

	// Idle connections expire.
	p = newConnPool(2, 64, 50*time.Millisecond)
	a, b := net.Pipe()
	defer b.Close()
	p.put(newPconn(a, key))
	time.Sleep(200 * time.Millisecond)
	if p.idleCount(key) != 0 || p.get(key) != nil {
		t.Fatal("an expired connection is still idle")
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Error("the expired connection was not closed")
	}
}

// The request on the wire: the URL's path and query as given, Host, the
// user agent, Content-Length, the Request's headers as given and nothing
// added but the trace context.
func TestDoWritesTheRequestAsGiven(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	url, _ := rawServerCapture(t, got, bodies)
	req := &Request{
		URL:    url + "a//b/../c?x=1&y=%2F&z",
		Header: http.Header{"X-Team": {"billing", "ops"}, "Webhook-Id": {"msg_1"}},
		Body:   []byte(`{"id":1}`),
	}
	res := newTestClient(t, WithUserAgent("herald-test/2")).Do(context.Background(), req)
	if res.Class != Delivered {
		t.Fatalf("%+v", res)
	}
	r := <-got
	if r.Method != http.MethodPost || r.RequestURI != "/a//b/../c?x=1&y=%2F&z" || r.Proto != "HTTP/1.1" {
		t.Errorf("request line: %s %s %s", r.Method, r.RequestURI, r.Proto)
	}
	if r.Host != strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/") {
		t.Errorf("Host %q", r.Host)
	}
	if r.UserAgent() != "herald-test/2" || r.ContentLength != 8 || r.Header.Get("Content-Type") != "" {
		t.Errorf("user-agent %q, content-length %d, content-type %q", r.UserAgent(), r.ContentLength, r.Header.Get("Content-Type"))
	}
	if v := r.Header.Values("X-Team"); len(v) != 2 || v[0] != "billing" || v[1] != "ops" || r.Header.Get("Webhook-Id") != "msg_1" {
		t.Errorf("headers %v", r.Header)
	}
	if b := <-bodies; string(b) != `{"id":1}` {
		t.Errorf("body %q", b)
	}

	// User info in the URL becomes basic authentication, as net/http has it.
	req = requestTo(t, strings.Replace(url, "http://", "http://hook:s3cret@", 1))
	if res := newTestClient(t).Do(context.Background(), req); res.Class != Delivered {
		t.Fatalf("%+v", res)
	}
	if user, pass, ok := (<-got).BasicAuth(); !ok || user != "hook" || pass != "s3cret" {
		t.Errorf("basic auth %q %q %v", user, pass, ok)
	}
	<-bodies
}

// rawServerCapture answers 204 to every request and hands each one over.
func rawServerCapture(t *testing.T, got chan<- *http.Request, bodies chan<- []byte) (string, *atomic.Int32) {
	t.Helper()
	return hostileListenerReq(t, func(r *http.Request, body []byte) string {
		got <- r
		bodies <- body
		return "HTTP/1.1 204 No Content\r\n\r\n"
	})
}

func hostileListenerReq(t *testing.T, handle func(*http.Request, []byte) string) (string, *atomic.Int32) {
	t.Helper()
	n := new(atomic.Int32)
	url := hostileListener(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(r.Body)
			n.Add(1)
			if _, err := io.WriteString(conn, handle(r, body)); err != nil {
				return
			}
		}
	})
	return url, n
}

// IPv6 literals: dialled as such, Host in brackets.
func TestDoIPv6Literal(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	host := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { host <- r.Host }))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	res := newTestClient(t).Do(context.Background(), requestTo(t, srv.URL))
	if res.Class != Delivered {
		t.Fatalf("%+v", res)
	}
	if h := <-host; h != ln.Addr().String() {
		t.Errorf("Host %q, want %q", h, ln.Addr().String())
	}
}

// A context cancelled or a timeout reached while the name resolves ends the
// attempt at once, with the stage that says so.
func TestDoCancelledOrTimedOutWhileConnecting(t *testing.T) {
	blocking := func(ctx context.Context, host string) ([]netip.Addr, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	c := newTestClient(t, WithResolver(blocking))

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	res := c.Do(ctx, requestTo(t, "http://slow-dns.test/"))
	assertNetworkError(t, res, StageCanceled)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}

	req := requestTo(t, "http://slow-dns.test/")
	req.Timeout = 100 * time.Millisecond
	res = c.Do(context.Background(), req)
	assertNetworkError(t, res, StageTimeout)
	if !strings.Contains(res.Err.Error(), "no response within 100ms while connecting") {
		t.Errorf("error %q", res.Err)
	}

	// The context's own deadline, earlier than the request's timeout.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req.Timeout = time.Minute
	res = c.Do(ctx, req)
	assertNetworkError(t, res, StageTimeout)
}

// Over TLS the client speaks HTTP/1.1 (ALPN http/1.1) and keeps the
// connection alive.
func TestDoTLSKeepAlive(t *testing.T) {
	type seen struct {
		proto string
		tls   string
	}
	got := make(chan seen, 3)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Proto, r.TLS.NegotiatedProtocol}
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	conns := countConns(srv)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := newTestClient(t, WithTLSConfig(&tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}}))
	for i := range 3 {
		if res := c.Do(context.Background(), requestTo(t, srv.URL)); res.Class != Delivered {
			t.Fatalf("attempt %d: %v %v", i, res.Class, res.Err)
		}
		if s := <-got; s.proto != "HTTP/1.1" || s.tls != "http/1.1" {
			t.Errorf("attempt %d: %+v, want HTTP/1.1 over ALPN http/1.1", i, s)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d TLS connections for 3 requests", n)
	}
}

// The client span: "HTTP POST", with the request's and the response's
// attributes, an error from 400 on, and the stage of a failed attempt as its
// error.type.
func TestDoSpanAttributes(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(status)
	})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	portNum, _ := strconv.Atoi(port)
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + refused.Addr().String() + "/"
	refused.Close()

	tests := []struct {
		url       string
		status    int64
		code      codes.Code
		errorType string
	}{
		{srv.URL + "/200", 200, codes.Unset, ""},
		{srv.URL + "/404", 404, codes.Error, "404"},
		{srv.URL + "/503", 503, codes.Error, "503"},
		{refusedURL, 0, codes.Error, StageDial},
	}
	for _, tt := range tests {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		c := newTestClient(t, WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}))
		c.Do(context.Background(), requestTo(t, tt.url))
		tp.Shutdown(context.Background())
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("%s: %d spans", tt.url, len(spans))
		}
		s := spans[0]
		if s.Name() != "HTTP POST" || s.SpanKind().String() != "client" {
			t.Errorf("%s: span %q %v", tt.url, s.Name(), s.SpanKind())
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value
		}
		if attrs["http.request.method"].AsString() != "POST" || attrs["url.full"].AsString() != tt.url ||
			attrs["server.address"].AsString() != "127.0.0.1" || attrs["network.protocol.version"].AsString() != "1.1" {
			t.Errorf("%s: attributes %v", tt.url, attrs)
		}
		wantPort := int64(portNum)
		if tt.status == 0 {
			_, p, _ := net.SplitHostPort(refused.Addr().String())
			n, _ := strconv.Atoi(p)
			wantPort = int64(n)
		}
		if attrs["server.port"].AsInt64() != wantPort {
			t.Errorf("%s: server.port %v, want %d", tt.url, attrs["server.port"], wantPort)
		}
		if got := attrs["http.response.status_code"].AsInt64(); got != tt.status {
			t.Errorf("%s: status code attribute %d", tt.url, got)
		}
		if got := attrs["error.type"].AsString(); got != tt.errorType {
			t.Errorf("%s: error.type %q, want %q", tt.url, got, tt.errorType)
		}
		if s.Status().Code != tt.code {
			t.Errorf("%s: span status %v, want %v", tt.url, s.Status(), tt.code)
		}
	}
}

// The HTTP client metrics otelhttp recorded: the duration and the request
// body size of each attempt.
func TestDoMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) })
	c := newTestClient(t, WithMeterProvider(mp))
	req := requestTo(t, srv.URL)
	c.Do(context.Background(), req)
	c.Do(context.Background(), req)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Histogram[float64]:
				if m.Name != "http.client.request.duration" || len(data.DataPoints) != 1 {
					t.Errorf("%s: %+v", m.Name, data)
					continue
				}
				dp := data.DataPoints[0]
				status, _ := dp.Attributes.Value("http.response.status_code")
				scheme, _ := dp.Attributes.Value("url.scheme")
				if dp.Count != 2 || status.AsInt64() != 202 || scheme.AsString() != "http" {
					t.Errorf("duration: count %d, attributes %v", dp.Count, dp.Attributes.ToSlice())
				}
				found[m.Name] = true
			case metricdata.Histogram[int64]:
				if m.Name != "http.client.request.body.size" || len(data.DataPoints) != 1 {
					t.Errorf("%s: %+v", m.Name, data)
					continue
				}
				if dp := data.DataPoints[0]; dp.Count != 2 || dp.Sum != 2*int64(len(req.Body)) {
					t.Errorf("body size: count %d sum %d, want 2 and %d", dp.Count, dp.Sum, 2*len(req.Body))
				}
				found[m.Name] = true
			}
		}
	}
	if !found["http.client.request.duration"] || !found["http.client.request.body.size"] {
		t.Errorf("metrics found: %v", found)
	}
}

// TestDoMetricsKeepsStatusesApart: attribute sets are cached by what they
// are made of, so another status is another data point.
func TestDoMetricsKeepsStatusesApart(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	var fail atomic.Bool
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(202)
	})
	c := newTestClient(t, WithMeterProvider(mp))
	req := requestTo(t, srv.URL)
	c.Do(context.Background(), req)
	fail.Store(true)
	c.Do(context.Background(), req)
	c.Do(context.Background(), req)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[int64]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if data, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "http.client.request.duration" {
				for _, dp := range data.DataPoints {
					status, _ := dp.Attributes.Value("http.response.status_code")
					counts[status.AsInt64()] += dp.Count
				}
			}
		}
	}
	if counts[202] != 1 || counts[500] != 2 || len(counts) != 2 {
		t.Fatalf("requests by status %v, want 202:1 500:2", counts)
	}
}

// Unusable requests are refused before anything is dialled.
func TestDoRefusesUnsendableRequests(t *testing.T) {
	var dialled atomic.Int32
	c := newTestClient(t, WithResolver(func(context.Context, string) ([]netip.Addr, error) {
		dialled.Add(1)
		return nil, errors.New("no")
	}))
	for _, u := range []string{"http://:8080/", "http://example.test:99999/", "http://example.test:port/"} {
		res := c.Do(context.Background(), requestTo(t, u))
		if res.Class != Refused {
			t.Errorf("%s: %v %v, want refused", u, res.Class, res.Err)
		}
	}
	req := requestTo(t, "http://example.test/")
	req.Header["Bad Name"] = []string{"x"}
	if res := c.Do(context.Background(), req); res.Class != Refused || !strings.Contains(fmt.Sprint(res.Err), "not a valid HTTP token") {
		t.Errorf("bad header name: %v %v", res.Class, res.Err)
	}
	if n := dialled.Load(); n != 0 {
		t.Errorf("resolved %d times", n)
	}
}

// TestDoCachesTargets: a URL is parsed once and then served from the cache,
// which answers as parsing does; bad URLs are never cached.
func TestDoCachesTargets(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RequestURI() != "/in?x=1" || r.Header.Get("Authorization") == "" {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(204)
	})
	c := newTestClient(t)
	u := strings.Replace(srv.URL, "http://", "http://user:pw@", 1) + "/in?x=1"
	for i := range 3 {
		if res := c.Do(context.Background(), requestTo(t, u)); res.Class != Delivered {
			t.Fatalf("request %d: %v %v", i, res.Class, res.Err)
		}
	}
	cached, ok := c.targets.Load(u)
	if !ok {
		t.Fatal("the URL was not cached")
	}
	parsed, err := parseTarget(u)
	if err != nil || cached.(target) != parsed {
		t.Fatalf("cached %+v, parsed %+v (%v)", cached, parsed, err)
	}
	for range 2 {
		if res := c.Do(context.Background(), requestTo(t, "ftp://example.test/")); res.Class != Refused {
			t.Fatalf("bad scheme: %v", res.Class)
		}
	}
	if _, ok := c.targets.Load("ftp://example.test/"); ok {
		t.Fatal("a refused URL was cached")
	}
}

// TestStartAwaitWait: a request started, awaited (twice: the second does
// nothing) and then waited for gives the same result as Do; a refused URL
// needs no await.
func TestStartAwaitWait(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond)
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(503)
	})
	c := newTestClient(t)
	p := c.Start(context.Background(), requestTo(t, srv.URL))
	start := time.Now()
	p.Await()
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("Await returned before the endpoint answered")
	}
	p.Await()
	res := p.Wait()
	if res.Status != 503 || res.Class != Retryable || res.RetryAfter != 7*time.Second {
		t.Fatalf("result %+v", res)
	}
	bad := c.Start(context.Background(), requestTo(t, "ftp://example.test/"))
	bad.Await()
	if res := bad.Wait(); res.Class != Refused {
		t.Fatalf("refused URL: %v", res.Class)
	}
}

// TestBurstsToOneHostReuseTheirConnections pins the default idle pool: the
// connections a burst of concurrent requests to one host opened all carry
// the next burst, as when a thousand subscriptions share a host.
func TestBurstsToOneHostReuseTheirConnections(t *testing.T) {
	const burst = 300
	var arrived sync.WaitGroup
	gate := make(chan struct{})
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived.Done()
		<-gate
		w.WriteHeader(http.StatusNoContent)
	})
	c := newTestClient(t)
	for round := range 2 {
		arrived.Add(burst)
		gate = make(chan struct{})
		results := make(chan Result, burst)
		for i := range burst {
			go func() {
				results <- c.Do(context.Background(), &Request{URL: srv.URL + "/sub/" + strconv.Itoa(i), Body: []byte(`{}`), Timeout: 10 * time.Second})
			}()
		}
		arrived.Wait() // every request holds a connection of its own
		close(gate)
		for range burst {
			if res := <-results; res.Class != Delivered {
				t.Fatalf("round %d: %+v", round, res)
			}
		}
	}
	if n := conns.Load(); n != burst {
		t.Fatalf("%d connections for two bursts of %d, want the first burst's reused", n, burst)
	}
}

// readCounter counts the reads from a connection.
type readCounter struct {
	net.Conn
	reads atomic.Int32
}

func (c *readCounter) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// TestSmallResponseIsOneRead pins the read of a response: one that fits
// what the wait for it reads takes no further read from the connection.
func TestSmallResponseIsOneRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const answer = "HTTP/1.1 204 No Content\r\nDate: Sun, 29 Nov 2026 03:44:00 GMT\r\nServer: test\r\n\r\n"
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte(answer))
		_, _ = io.Copy(io.Discard, c)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := &readCounter{Conn: conn}
	pc := newPconn(rc, poolKey{host: ln.Addr().String()})
	if err := pc.first.awaitResponse(); err != nil {
		t.Fatal(err)
	}
	resp, reusable, err := NewClient().readResponse(&pc.first)
	if err != nil {
		t.Fatal(err)
	}
	if resp.status != http.StatusNoContent || !reusable {
		t.Fatalf("status %d, reusable %v; want 204 on a reusable connection", resp.status, reusable)
	}
	if n := rc.reads.Load(); n != 1 {
		t.Fatalf("%d reads for a %d-byte response, want 1", n, len(answer))
	}
}

// TestConnPoolChecksOnlyLongIdleConns pins the pool's bookkeeping: a
// connection put back moments ago is handed out without a check, one idle
// for longer is checked, and one taken and put back expires a whole timeout
// after it was last put back, though its timer was set once.
func TestConnPoolChecksOnlyLongIdleConns(t *testing.T) {
	var checks atomic.Int32
	checkIdleConn = func(net.Conn) bool { checks.Add(1); return true }
	t.Cleanup(func() { checkIdleConn = connUsable })
	key := poolKey{host: "example.test"}
	p := newConnPool(2, 64, time.Hour)
	a, b := net.Pipe()
	defer b.Close()
	pc := newPconn(a, key)
	idleFor := func(d time.Duration) {
		p.mu.Lock()
		pc.idleSince = time.Now().Add(-d)
		p.mu.Unlock()
	}

	p.put(pc)
	if p.get(key) != pc || checks.Load() != 0 {
		t.Fatalf("a connection put back just now: %d checks, want it reused unchecked", checks.Load())
	}
	p.put(pc)
	idleFor(2 * trustIdle)
	if p.get(key) != pc || checks.Load() != 1 {
		t.Fatalf("a connection idle for %v: %d checks, want it reused after one", 2*trustIdle, checks.Load())
	}

	// Its timer fires while it is in use: nothing happens, and putting it
	// back sets the timer again.
	p.expire(pc)
	p.put(pc)
	p.mu.Lock()
	armed := pc.armed
	p.mu.Unlock()
	if !armed {
		t.Fatal("put did not set the timer of a connection whose timer had fired")
	}
	// It fires before a whole timeout since the connection was last put
	// back: the connection stays.
	idleFor(time.Hour / 2)
	p.expire(pc)
	if p.idleCount(key) != 1 {
		t.Fatal("a connection idle for half its timeout was expired")
	}
	idleFor(time.Hour)
	p.expire(pc)
	if p.idleCount(key) != 0 {
		t.Fatal("a connection idle for its whole timeout was kept")
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Error("the expired connection was not closed")
	}
}

func TestWholeBodiless(t *testing.T) {
	for _, c := range []struct {
		response string
		want     bool
	}{
		{"HTTP/1.1 204 No Content\r\n\r\n", true},
		{"HTTP/1.1 204 No Content\r\nDate: Sun, 29 Nov 2026 08:40:00 GMT\r\n\r\n", true},
		{"HTTP/1.1 204\r\n\r\n", true},
		{"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nDate: Sun, 29 Nov 2026 08:40:00 GMT\r\nContent-Length: 0\r\n\r\n", true},
		{"HTTP/1.1 202 Accepted\r\ncontent-length:0\r\n\r\n", true},
		{"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n", true},

		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false}, // a body
		{"HTTP/1.1 200 OK\r\nContent-Length: 00\r\n\r\n", false},  // not plainly 0
		{"HTTP/1.1 200 OK\r\n\r\n", false},                        // a body until the connection closes
		{"HTTP/1.1 100 Continue\r\n\r\n", false},                  // the response is still to come
		{"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", false}, // the connection ends
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.0 204 No Content\r\n\r\n", false},
		{"HTTP/1.1 204 No Content\r\nDate: Sun, 29 Nov", false},                   // not all read yet
		{"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false}, // more than one
		{"HTTP/1.1 2040 No Content\r\n\r\n", false},
		{"HTTP/1.1 204 No Content\r\nbroken\r\n\r\n", false},
		{"HTTP/1.1 204 No Content\r\n\nX: y\r\n\r\n", false},
		{"HTTP/1.1 204 No Content\nX: y\r\n\r\n", false},
		{"HTTP/1.1 204 No\r\n\r\n\r\n", false},
		{"", false},
	} {
		if got := wholeBodiless([]byte(c.response)); got != c.want {
			t.Errorf("%q: %v, want %v", c.response, got, c.want)
		}
	}
}

// TestBodilessResponseFreesItsConnection pins when a connection goes back
// to the pool: as soon as the response is in, when it has no body, so
// that a response waiting to be finished holds no connection; only once it
// is read, when it has one. The latency is the endpoint's either way, not
// the wait to be finished.
func TestBodilessResponseFreesItsConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/body" {
			w.Write([]byte("ok"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := newTestClient(t)
	tgt, _ := parseTarget(srv.URL)
	for _, path := range []string{"/", "/body", "/"} {
		start := time.Now()
		p := c.Start(context.Background(), requestTo(t, srv.URL+path))
		p.Await()
		awaited := time.Since(start)
		idle := c.pool.idleCount(tgt.key)
		if want := map[bool]int{true: 0, false: 1}[path == "/body"]; idle != want {
			t.Fatalf("%s: %d connections idle once the response is in, want %d", path, idle, want)
		}
		time.Sleep(50 * time.Millisecond) // waiting to be finished
		res := p.Wait()
		if res.Class != Delivered {
			t.Fatalf("%s: %+v", path, res)
		}
		if n := c.pool.idleCount(tgt.key); n != 1 {
			t.Fatalf("%s: %d connections idle after Wait, want 1", path, n)
		}
		if path == "/" && res.Latency > awaited {
			t.Fatalf("latency %v, longer than the %v until the response was in", res.Latency, awaited)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for three requests one after another, want 1", n)
	}
}

// FuzzWholeBodiless checks wholeBodiless against the parser that reads
// responses: what it takes for a whole response without a body parses as
// one, to the last byte, on a connection fit for the next request.
func FuzzWholeBodiless(f *testing.F) {
	f.Add([]byte("HTTP/1.1 204 No Content\r\nDate: Sun, 29 Nov 2026 08:40:00 GMT\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	c := NewClient()
	f.Fuzz(func(t *testing.T, b []byte) {
		if !wholeBodiless(b) {
			return
		}
		h := &heldResponse{}
		h.Reset(bytes.Clone(b))
		resp, reusable, err := c.readResponse(h)
		if err != nil || !reusable || len(resp.body) != 0 || resp.status < 200 {
			t.Fatalf("%q: status %d, body %q, reusable %v, err %v", b, resp.status, resp.body, reusable, err)
		}
	})
}

// get is take without waiting: an idle connection, or nil with the dial
// slot given back.
func (p *connPool) get(key poolKey) *pconn {
	pc, _ := p.take(context.Background(), key, time.Time{})
	if pc == nil {
		p.dialed(key)
	}
	return pc
}
