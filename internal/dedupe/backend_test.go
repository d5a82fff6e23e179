package dedupe

import (
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/herald-dev/herald/internal/testkit"
)

// backend is one Redis the contract tests run against: a real server from
// testkit when HERALD_TEST_REDIS is set, else a miniredis started here,
// whose TTLs only run when the test advances them.
type backend struct {
	name    string
	rdb     redis.UniversalClient
	advance func(time.Duration) // lets server-side TTLs run out
}

func backends(t testing.TB) []backend {
	t.Helper()
	if testkit.RealRedis() {
		opts, err := redis.ParseURL(testkit.Redis(t))
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { rdb.Close() })
		return []backend{{name: "redis", rdb: rdb, advance: time.Sleep}}
	}
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return []backend{{name: "miniredis", rdb: rdb, advance: mr.FastForward}}
}

func each(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
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
