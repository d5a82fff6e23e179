package dev

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testkit.LeakOptions()...) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runDev runs herald dev until it printed n verified deliveries, then stops
// it the way Ctrl-C does and returns what it printed.
func runDev(t *testing.T, dir string, port, n int) string {
	t.Helper()
	cfg := config.Default()
	cfg.API.Listen = "127.0.0.1:0"
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Dir: dir, KafkaPort: port, Produce: 50 * time.Millisecond, Out: out, Logger: zap.NewNop()})
	}()
	testkit.Eventually(t, 60*time.Second, func() bool {
		return strings.Count(out.String(), "delivered") >= n
	}, "herald dev printed %d deliveries; output so far:\n%s", n, out)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("herald dev returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("herald dev did not stop within 60s of Ctrl-C")
	}
	return out.String()
}

// TestDevDeliversVerifiedWebhooks is the README's first command: with
// nothing installed, demo events flow to the demo subscriber, which answers
// 204 only when the signature verifies with pkg/webhook. A second run on
// the same data directory keeps the subscription and goes on delivering.
func TestDevDeliversVerifiedWebhooks(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	out := runDev(t, dir, port, 5)
	for _, want := range []string{"kafka     127.0.0.1:", "receiver  http://127.0.0.1:", "api       http://127.0.0.1:", "status 204"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "signature check failed") {
		t.Fatalf("the demo subscriber refused a signature:\n%s", out)
	}

	out = runDev(t, dir, port, 3)
	if strings.Contains(out, "signature check failed") || !strings.Contains(out, "status 204") {
		t.Fatalf("second run on the same data:\n%s", out)
	}
}
