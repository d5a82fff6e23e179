package delivery

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// silentHolder accepts connections and holds them open without reading or
// answering, all on one goroutine, so that the test process's goroutines and
// heap are the client's (the held requests sit in the socket buffers).
func silentHolder(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// What a request in flight costs the client: one goroutine (its caller's)
// and a small, fixed amount of heap, whatever the connection's buffers. The
// net/http Transport this client replaced needed three goroutines and about
// 15 KiB of heap per request in flight.
func TestInFlightCost(t *testing.T) {
	const n = 400
	addr, accepted := silentHolder(t)

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	c := newTestClient(t, WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx, parent := tp.Tracer("test").Start(ctx, "process", trace.WithSpanKind(trace.SpanKindConsumer))
	defer parent.End()

	reqs := make([]*Request, n)
	for i := range reqs {
		reqs[i] = requestTo(t, "http://"+addr+"/hook")
		reqs[i].Timeout = time.Minute
	}
	// One request first, so that pools and the like exist before the
	// baseline is read.
	warm, warmCancel := context.WithCancel(ctx)
	warmDone := make(chan Result, 1)
	go func() { warmDone <- c.Do(warm, requestTo(t, "http://"+addr+"/warm")) }()
	waitFor(t, func() bool { return accepted.Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	warmCancel()
	<-warmDone

	// Two collections empty the sync.Pools (and their victim caches) of
	// buffers used only while writing or parsing.
	var before runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	results := make(chan Result, n)
	var started sync.WaitGroup
	started.Add(n)
	for i := range n {
		go func() {
			started.Done()
			results <- c.Do(ctx, reqs[i])
		}()
	}
	started.Wait()
	waitFor(t, func() bool { return accepted.Load() == n+1 })
	time.Sleep(200 * time.Millisecond) // every request written and waiting

	var during runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&during)
	goroutines := runtime.NumGoroutine() - goroutinesBefore
	heapPer := (int64(during.HeapAlloc) - int64(before.HeapAlloc)) / n
	stackPer := (int64(during.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("%d requests in flight: %d goroutines, %d bytes of heap and %d of stack each (the holder's end of each connection included)", n, goroutines, heapPer, stackPer)

	if goroutines > n+5 {
		t.Errorf("%d goroutines for %d requests in flight, want one each", goroutines, n)
	}
	// The span, the socket and the connection's bookkeeping; no buffers.
	if !raceEnabled && heapPer > 3<<10 {
		t.Errorf("%d bytes of heap per request in flight, want at most 3 KiB", heapPer)
	}

	cancel()
	for range n {
		res := <-results
		assertNetworkError(t, res, StageCanceled)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPendingKeepsNoRequest pins what a request waiting for its response
// holds: not the Request, its headers or its body, which may be large and
// which thousands of requests to a slow endpoint would otherwise keep.
func TestPendingKeepsNoRequest(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // runs before srv.Close
	c := newTestClient(t)
	req := &Request{URL: srv.URL + "/slow", Header: http.Header{"X-Test": {"1"}}, Body: bytes.Repeat([]byte("x"), 64<<10), Timeout: 10 * time.Second}
	kept := weak.Make(req)
	p := c.Start(context.Background(), req)
	req = nil
	runtime.GC()
	runtime.GC()
	if kept.Value() != nil {
		t.Fatal("a request waiting for its response keeps its Request alive")
	}
	once.Do(func() { close(release) })
	if res := p.Wait(); res.Class != Delivered {
		t.Fatalf("result %+v, want delivered", res)
	}
}
