package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/testkit"
)

// Hostile destinations and subscribers: whatever they do, an attempt ends
// with a classified result, within its timeout, holding a bounded amount of
// memory, and never reaches an address the policy refuses.

// privateServer listens on 127.0.0.2, which the tests' policies refuse (they
// allow only 127.0.0.1/32), and counts the requests that reach it.
func privateServer(t *testing.T) (addr string, hits *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	hits = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String(), hits
}

var onlyLoopback1 = AllowCIDRs(netip.MustParsePrefix("127.0.0.1/32"))

// A public endpoint that redirects to a private or metadata address gets a
// retryable "redirect not followed" outcome; the target never sees a
// request, whatever the redirect status or spelling of the target.
func TestRedirectToPrivateIsNotFollowed(t *testing.T) {
	private, hits := privateServer(t)
	_, port, _ := net.SplitHostPort(private)
	targets := []string{
		"http://" + private + "/steal",
		"http://internal.test:" + port + "/",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[::ffff:127.0.0.2]:" + port + "/",
		"http://2130706434:" + port + "/", // 127.0.0.2
	}
	resolver := hostsResolver(t, map[string][]string{"public.test": {"127.0.0.1"}, "internal.test": {"127.0.0.2"}})
	c := newTestClientNoPrivate(t, onlyLoopback1, WithResolver(resolver))
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, target := range targets {
			redirector := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target, status)
			})
			_, rport, _ := net.SplitHostPort(redirector.Listener.Addr().String())
			res := c.Do(context.Background(), requestTo(t, "http://public.test:"+rport+"/hook"))
			if res.Class != Retryable || res.Status != status {
				t.Errorf("%d to %s: class %v status %d err %v, want retryable %d", status, target, res.Class, res.Status, res.Err, status)
			}
			if res.Err == nil || !strings.Contains(res.Err.Error(), "redirect not followed") {
				t.Errorf("%d to %s: err %v does not say the redirect was not followed", status, target, res.Err)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the private server received %d requests through redirects", n)
	}
}

// A name whose answer moves from an allowed address to a refused one between
// two attempts (DNS rebinding, TTL 0): the second attempt is refused with
// the address it resolved to, and the private server never sees it, even
// though the first attempt left a keep-alive connection behind.
func TestRebindingBetweenAttempts(t *testing.T) {
	allowed := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	_, port, _ := net.SplitHostPort(allowed.Listener.Addr().String())
	// The private server listens on the same port on 127.0.0.2, so the
	// rebound name reaches it if the address is not checked.
	ln, err := net.Listen("tcp", "127.0.0.2:"+port)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2:%s: %v", port, err)
	}
	var hits atomic.Int32
	priv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	priv.Listener.Close()
	priv.Listener = ln
	priv.Start()
	t.Cleanup(priv.Close)

	var lookups atomic.Int32
	resolver := func(context.Context, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
	}
	c := newTestClientNoPrivate(t, onlyLoopback1, WithResolver(resolver))
	url := "http://rebind.test:" + port + "/hook"
	if res := c.Do(context.Background(), requestTo(t, url)); res.Class != Delivered {
		t.Fatalf("first attempt: %v %v", res.Class, res.Err)
	}
	c.CloseIdleConnections() // the next attempt dials again
	res := c.Do(context.Background(), requestTo(t, url))
	var de *DestinationError
	if res.Class != Refused || !errors.As(res.Err, &de) || de.Addr != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("second attempt: %v %v, want a refusal naming 127.0.0.2", res.Class, res.Err)
	}
	if !strings.Contains(res.Err.Error(), "rebind.test (127.0.0.2)") {
		t.Errorf("refusal %q does not name the host and the address", res.Err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the private server received %d requests", n)
	}
}

// More spellings of refused addresses than the table in ssrf_test.go:
// metadata in octal, hex and decimal, IPv6 long forms, trailing dots.
func TestMoreRefusedSpellings(t *testing.T) {
	c := newTestClientNoPrivate(t)
	for host, reason := range map[string]string{
		"0251.0376.0251.0376":            "cloud metadata",
		"0xa9fea9fe":                     "cloud metadata",
		"0xA9.0xFE.0xA9.0xFE":            "cloud metadata",
		"2852039166":                     "cloud metadata",
		"169.254.43518":                  "cloud metadata",
		"169.254.169.254.":               "cloud metadata",
		"[::ffff:a9fe:a9fe]":             "cloud metadata",
		"[64:ff9b::a9fe:a9fe]":           "cloud metadata",
		"[0:0:0:0:0:ffff:7f00:1]":        "loopback",
		"[0000::0001]":                   "loopback",
		"[fd00::1]":                      "private",
		"[fdff:ffff:ffff:ffff::1]":       "private",
		"[febf::1]":                      "link-local",
		"100.64.0.0":                     "shared (CGNAT)",
		"[::ffff:100.127.0.1]":           "shared (CGNAT)",
		"0":                              "unspecified",
		"0.0.0.0.":                       "unspecified",
		"[::ffff:0:0]":                   "unspecified",
		"172.16.0.0":                     "private",
		"0xac.0x1f.0xff.0xff":            "private",
		"192.168.0.1":                    "private",
		"030052000001":                   "private", // 192.168.0.1 in octal
		"[::ffff:192.168.0.1]":           "private",
		"[2002:c0a8:1::]":                "private", // 6to4 of 192.168.0.1
		"[::ffff:10.255.255.255]":        "private",
		"10.1":                           "private",
		"[fe80::1%25eth0]":               "link-local",
		"[ff05::1:3]":                    "multicast",
		"[::ffff:224.0.0.251]":           "multicast",
		"[2001:db8:85a3::8a2e:370:7334]": "documentation",
	} {
		res := c.Do(context.Background(), requestTo(t, "http://"+host+":8080/"))
		var de *DestinationError
		if res.Class != Refused || !errors.As(res.Err, &de) {
			t.Errorf("%s: %v %v, want a refusal", host, res.Class, res.Err)
			continue
		}
		if de.Reason != reason {
			t.Errorf("%s: reason %q, want %q (%v)", host, de.Reason, reason, de)
		}
	}
}

// hostileListener serves every connection with handle on a raw socket.
func hostileListener(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String() + "/"
}

// readRequest reads the request line and headers (the body is small).
func readRequest(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	req, err := http.ReadRequest(r)
	if err == nil {
		_, _ = io.Copy(io.Discard, req.Body)
	}
}

// heapGrowth runs f and reports how much the live heap grew.
func heapGrowth(f func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// Responses built to exhaust the client: endless headers, 10,000 headers,
// a body that never ends after a 200, one byte a second. Each ends within
// the timeout with a classified result, and the client keeps no more than
// its caps.
func TestHostileResponses(t *testing.T) {
	endlessHeaders := hostileListener(t, func(conn net.Conn) {
		readRequest(conn)
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\n")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(conn, "X-Flood-%d: %s\r\n", i, strings.Repeat("a", 1000)); err != nil {
				return
			}
		}
	})
	tenThousandHeaders := hostileListener(t, func(conn net.Conn) {
		readRequest(conn)
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\n")
		for i := range 10000 {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		_, _ = io.WriteString(conn, b.String())
	})
	endless200 := hostileListener(t, func(conn net.Conn) {
		readRequest(conn)
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
		chunk := strings.Repeat("z", 32<<10)
		for {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
	})
	dribble := hostileListener(t, func(conn net.Conn) {
		readRequest(conn)
		for _, c := range []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") {
			if _, err := conn.Write([]byte{c}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	garbage := hostileListener(t, func(conn net.Conn) {
		readRequest(conn)
		_, _ = io.WriteString(conn, "\x00\xff\xfeNOT HTTP AT ALL\r\n\r\n")
	})
	hugeContentLength := hostileListener(t, func(conn net.Conn) {
		readRequest(conn)
		_, _ = io.WriteString(conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1099511627776\r\n\r\nshort")
	})

	c := newTestClient(t, MaxResponseBytes(4<<10))
	tests := []struct {
		name  string
		url   string
		class Class
		stage string // of a NetworkError; "" when an HTTP status came back
	}{
		{"endless headers", endlessHeaders, Retryable, StageRead},
		{"10,000 headers", tenThousandHeaders, Retryable, StageRead},
		{"endless 200 body", endless200, Delivered, ""},
		{"one byte per 100ms", dribble, Retryable, StageTimeout},
		{"not HTTP", garbage, Retryable, StageRead},
		{"huge content-length", hugeContentLength, Retryable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := requestTo(t, tt.url)
			req.Timeout = time.Second
			var res Result
			start := time.Now()
			grew := heapGrowth(func() { res = c.Do(context.Background(), req) })
			took := time.Since(start)
			if res.Class != tt.class {
				t.Fatalf("class %v (status %d, err %v), want %v", res.Class, res.Status, res.Err, tt.class)
			}
			if tt.stage != "" {
				var ne *NetworkError
				if !errors.As(res.Err, &ne) || ne.Stage != tt.stage {
					t.Errorf("err %v, want a %s NetworkError", res.Err, tt.stage)
				}
			}
			if len(res.Body) > 4<<10 {
				t.Errorf("kept %d bytes of body, cap 4 KiB", len(res.Body))
			}
			if took > 3*time.Second {
				t.Errorf("took %v with a 1s timeout", took)
			}
			// The transport's own buffers are a few hundred KiB at most;
			// what matters is that nothing grows with the response.
			if grew > 8<<20 {
				t.Errorf("heap grew by %d bytes", grew)
			}
			t.Logf("%v %d %v in %v, heap %+d bytes", res.Class, res.Status, res.Err, took.Round(time.Millisecond), grew)
		})
	}
}

// A subscriber that accepts the connection and never reads: a 10 MiB body
// (a raw payload of an oversized event) fills the socket buffers, and the
// attempt times out while sending instead of blocking a worker for ever.
func TestSubscriberNeverReadsALargeBody(t *testing.T) {
	req := requestTo(t, "http://"+testkit.SilentListener(t)+"/")
	req.Body = make([]byte, 10<<20)
	req.Timeout = 500 * time.Millisecond
	start := time.Now()
	res := newTestClient(t).Do(context.Background(), req)
	assertNetworkError(t, res, StageTimeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a 500ms timeout", d)
	}
}

// Custom subscription headers that smuggle CR/LF cannot reach the wire:
// Build refuses them (checked in request_test.go), and a Request made by
// hand with one is refused by the client before anything is sent.
func TestHeaderInjectionNeverReachesTheWire(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	c := newTestClient(t)
	for _, h := range []http.Header{
		{"X-Team": {"billing\r\nX-Injected: 1"}},
		{"X-Team\r\nX-Injected": {"1"}},
		{"X-Team": {"a\nb"}},
		{"X-Team": {"a\x00b"}},
	} {
		req := requestTo(t, srv.URL)
		for k, v := range h {
			req.Header[k] = v
		}
		res := c.Do(context.Background(), req)
		if res.Class == Delivered || res.Err == nil {
			t.Errorf("header %q sent: %v", h, res.Class)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server received %d requests with injected headers", n)
	}
}
