package delivery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/testkit"
)

// dialingHosts is how many hosts p counts dials or waiters for.
func dialingHosts(p *connPool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dials)
}

// TestDialsPerHostAreBounded sends a burst of 40 requests to one host whose
// name takes until released to resolve: no more than MaxDialsPerHost
// connections are dialled at once, the others wait, and every request is
// delivered once the dials go through, over fewer connections than
// requests.
func TestDialsPerHostAreBounded(t *testing.T) {
	var accepted atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	release := make(chan struct{})
	var resolving, most atomic.Int32
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		n := resolving.Add(1)
		defer resolving.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	const dials, requests = 3, 40
	c := newTestClient(t, WithResolver(resolver), MaxDialsPerHost(dials))

	var wg sync.WaitGroup
	results := make([]Result, requests)
	for i := range requests {
		wg.Go(func() {
			results[i] = c.Do(context.Background(), requestTo(t, "http://hooks.test:"+port+"/"))
		})
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return resolving.Load() >= dials }, "the first dials start")
	// Let the others reach the pool: none of them may start a dial.
	time.Sleep(50 * time.Millisecond)
	if n := resolving.Load(); n != dials {
		t.Fatalf("%d dials under way at once, want %d", n, dials)
	}
	close(release)
	wg.Wait()
	for i, r := range results {
		if r.Err != nil || r.Status != http.StatusNoContent {
			t.Fatalf("request %d: %d, %v", i, r.Status, r.Err)
		}
	}
	if m := most.Load(); m > dials {
		t.Fatalf("%d dials at once, want at most %d", m, dials)
	}
	if n := accepted.Load(); n >= requests {
		t.Fatalf("%d connections for %d requests: the waiting ones did not reuse any", n, requests)
	}
	if n := dialingHosts(c.pool); n != 0 {
		t.Fatalf("%d hosts still count dials or waiters after the burst", n)
	}
}

// TestWaitForDialEndsAtTheDeadline: a request that finds every dial slot
// taken gives up at its own timeout, as a timeout while connecting, and
// leaves no waiter behind.
func TestWaitForDialEndsAtTheDeadline(t *testing.T) {
	release := make(chan struct{})
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		select {
		case <-release:
			return nil, errors.New("no such host")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := newTestClient(t, WithResolver(resolver), MaxDialsPerHost(1))
	first := make(chan Result, 1)
	go func() { first <- c.Do(context.Background(), requestTo(t, "http://hooks.test/")) }()
	key := poolKey{host: "hooks.test"}
	testkit.Eventually(t, 10*time.Second, func() bool {
		c.pool.mu.Lock()
		defer c.pool.mu.Unlock()
		h := c.pool.dials[key]
		return h != nil && h.dialing == 1
	}, "the first request's dial starts")
	req := requestTo(t, "http://hooks.test/")
	req.Timeout = 50 * time.Millisecond
	res := c.Do(context.Background(), req)
	var ne *NetworkError
	if !errors.As(res.Err, &ne) || ne.Stage != StageTimeout || !strings.Contains(res.Err.Error(), "connecting") {
		t.Fatalf("waiting for a dial past the timeout: %v, want a timeout while connecting", res.Err)
	}
	c.pool.mu.Lock()
	waiters := len(c.pool.dials[key].waiters)
	c.pool.mu.Unlock()
	if waiters != 0 {
		t.Fatalf("%d waiters left after the timeout", waiters)
	}
	close(release)
	if r := <-first; r.Err == nil {
		t.Fatal("the first request's failed lookup gave no error")
	}
	if dialingHosts(c.pool) != 0 {
		t.Fatal("a dial slot stayed taken after its dial failed")
	}
}

// TestConnPoolHandsOver: with the only dial slot taken, a waiter gets the
// next connection put back, or the slot once the dial ends; one that gives
// up after being served passes on what it got.
func TestConnPoolHandsOver(t *testing.T) {
	key := poolKey{host: "example.test"}
	p := newConnPool(2, 1, time.Hour)
	if pc, err := p.take(context.Background(), key, time.Time{}); pc != nil || err != nil {
		t.Fatalf("take on an empty pool = %v, %v; want a dial slot", pc, err)
	}
	got := make(chan *pconn, 2)
	waiter := func() {
		pc, err := p.take(context.Background(), key, time.Time{})
		if err != nil {
			t.Error(err)
		}
		got <- pc
	}
	waiting := func(n int) {
		testkit.Eventually(t, 10*time.Second, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.dials[key].waiters) == n
		}, "%d requests wait", n)
	}
	go waiter()
	waiting(1)
	a, b := net.Pipe()
	defer b.Close()
	pc := newPconn(a, key)
	p.put(pc)
	if g := <-got; g != pc {
		t.Fatalf("the waiter got %v, want the connection put back", g)
	}
	if n := p.idleCount(key); n != 0 {
		t.Fatalf("%d idle: the connection handed over was also kept", n)
	}

	go waiter()
	waiting(1)
	p.dialed(key)
	if g := <-got; g != nil {
		t.Fatalf("the waiter got %v, want the dial slot", g)
	}

	// Served as it gave up: the connection it was handed goes to the pool.
	w := make(chan *pconn, 1)
	p.mu.Lock()
	p.dials[key].waiters = append(p.dials[key].waiters, w)
	p.mu.Unlock()
	p.put(pc)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g, err := p.wait(ctx, key, w, time.Time{})
	switch {
	case g == pc && err == nil:
		p.put(pc) // it took the connection after all
	case g == nil && errors.Is(err, context.Canceled):
	default:
		t.Fatalf("wait = %v, %v; want the connection or the cancellation", g, err)
	}
	if n := p.idleCount(key); n != 1 {
		t.Fatalf("%d idle after the waiter gave up, want the connection it was handed", n)
	}
	p.dialed(key)
	if n := dialingHosts(p); n != 0 {
		t.Fatalf("%d hosts left counting dials", n)
	}
	p.closeIdle()
}
