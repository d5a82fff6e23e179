package dedupe

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// backend is one Redis the contract tests run against: miniredis always,
// a real server too when HERALD_TEST_REDIS holds its URL.
type backend struct {
	name    string
	rdb     redis.UniversalClient
	advance func(time.Duration) // lets server-side TTLs run out
	prefix  string              // isolates tests sharing a real server
}

func backends(t testing.TB) []backend {
	t.Helper()
	mr := miniredis.RunT(t)
	mini := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { mini.Close() })
	bs := []backend{{name: "miniredis", rdb: mini, advance: mr.FastForward, prefix: "herald:d:"}}

	if url := os.Getenv("HERALD_TEST_REDIS"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("HERALD_TEST_REDIS: %v", err)
		}
		real := redis.NewClient(opts)
		t.Cleanup(func() { real.Close() })
		bs = append(bs, backend{name: "redis", rdb: real, advance: time.Sleep, prefix: "herald:test:d:" + randomHex() + ":"})
	}
	return bs
}

func each(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fakeClock is a settable time source for log sampling.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
