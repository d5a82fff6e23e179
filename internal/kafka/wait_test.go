package kafka

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-dev/herald/internal/config"
)

// freePort returns a port nothing listens on, for now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestWaitForBrokerRetriesUntilTheBrokerAppears(t *testing.T) {
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	core, logs := observer.New(zapcore.InfoLevel)
	cl, err := NewClient(config.Kafka{Brokers: []string{addr}}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// Nothing listens: WaitForBroker retries until its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	err = WaitForBroker(ctx, cl, zap.New(core))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForBroker() = %v, want DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "kafka not reachable at "+addr) {
		t.Errorf("error does not name the broker: %v", err)
	}
	retries := logs.FilterMessageSnippet("kafka not reachable at " + addr + ": ").FilterMessageSnippet("; retrying in ").All()
	if len(retries) < 2 {
		t.Fatalf("want at least 2 retry logs in 700ms, got %d: %v", len(retries), logs.All())
	}
	if first := retries[0]; first.Level != zapcore.WarnLevel || !strings.HasSuffix(first.Message, "; retrying in 100ms") ||
		first.ContextMap()["brokers"] != addr {
		t.Errorf("first retry log = %s %q %v", first.Level, first.Message, first.ContextMap())
	}
	if !strings.HasSuffix(retries[1].Message, "; retrying in 200ms") {
		t.Errorf("backoff does not double: %q", retries[1].Message)
	}

	// The broker comes up while WaitForBroker is retrying.
	started := make(chan *kfake.Cluster, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		c, err := kfake.NewCluster(kfake.Ports(port))
		if err != nil {
			t.Errorf("starting kfake on port %d: %v", port, err)
		}
		started <- c
	}()
	defer func() {
		if c := <-started; c != nil {
			c.Close()
		}
	}()
	ctx, cancel = context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := WaitForBroker(ctx, cl, zap.New(core)); err != nil {
		t.Fatalf("WaitForBroker() after the broker started = %v", err)
	}
	if n := logs.FilterMessage("kafka reachable at " + addr).Len(); n != 1 {
		t.Errorf("want one 'kafka reachable' log, got %d", n)
	}
}

func TestWaitForBrokerReturnsAtOnceWhenUp(t *testing.T) {
	c := newCluster(t)
	core, logs := observer.New(zapcore.DebugLevel)
	cl, err := NewClient(config.Kafka{Brokers: c.ListenAddrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := WaitForBroker(testContext(t, 5*time.Second), cl, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("logged on a first-try success: %v", logs.All())
	}
}

func TestWaitForBrokerCanceled(t *testing.T) {
	cl, err := NewClient(config.Kafka{Brokers: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := WaitForBroker(ctx, cl, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitForBroker(canceled) = %v", err)
	}
}
