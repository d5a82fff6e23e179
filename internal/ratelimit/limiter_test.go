package ratelimit

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-dev/herald/internal/testkit"
)

// backend is one Redis the limiter tests run against: a real server from
// testkit when HERALD_TEST_REDIS is set, where time runs by itself, else a
// miniredis whose clock the test moves.
type backend struct {
	name    string
	rdb     redis.UniversalClient
	advance func(time.Duration)
}

func each(t *testing.T, fn func(t *testing.T, b backend)) {
	var b backend
	if testkit.RealRedis() {
		opts, err := redis.ParseURL(testkit.Redis(t))
		if err != nil {
			t.Fatal(err)
		}
		b = backend{name: "redis", rdb: redis.NewClient(opts), advance: time.Sleep}
	} else {
		mr := miniredis.RunT(t)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		mr.SetTime(now)
		b = backend{
			name: "miniredis", rdb: redis.NewClient(&redis.Options{Addr: mr.Addr()}),
			advance: func(d time.Duration) { now = now.Add(d); mr.SetTime(now) },
		}
	}
	t.Cleanup(func() { b.rdb.Close() })
	t.Run(b.name, func(t *testing.T) { fn(t, b) })
}

// Over one second of steady calls an idle endpoint gets its burst plus
// perSecond requests, however many are attempted.
func TestLimiterWindow(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		const perSecond = 50
		l := NewLimiter(b.rdb)
		ctx := context.Background()

		allowed := 0
		call := func() {
			ok, retryAfter, err := l.Allow(ctx, "sub_a", perSecond)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				allowed++
			} else if retryAfter <= 0 || retryAfter > time.Second/perSecond {
				t.Fatalf("retryAfter = %v, want within one emission interval", retryAfter)
			}
		}
		start := time.Now()
		for range 20 {
			call()
		}
		if b.name == "miniredis" && allowed != burst(perSecond) {
			t.Fatalf("at one instant: %d allowed, want the burst %d", allowed, burst(perSecond))
		}
		for range 100 {
			b.advance(10 * time.Millisecond)
			for range 4 {
				call()
			}
		}
		elapsed := time.Second
		if b.name != "miniredis" {
			elapsed = time.Since(start)
		}
		want := float64(burst(perSecond)) + perSecond*elapsed.Seconds()
		if math.Abs(float64(allowed)-want) > math.Max(2, want*0.05) {
			t.Fatalf("%d allowed over %v, want ≈ %.0f (burst %d + %d/s)", allowed, elapsed, want, burst(perSecond), perSecond)
		}
	})
}

func TestLimitersShareOneBudget(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		const perSecond = 100
		ctx := context.Background()
		instances := []*Limiter{NewLimiter(b.rdb), NewLimiter(b.rdb)}
		allowed := make([]int, 2)
		start := time.Now()
		for i := range 60 {
			ok, _, err := instances[i%2].Allow(ctx, "sub_shared", perSecond)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				allowed[i%2]++
			}
		}
		// At one instant (miniredis) exactly the burst; on a real server
		// the budget also refills while the calls run.
		want, slack := float64(burst(perSecond)), 0.0
		if b.name != "miniredis" {
			want += perSecond * time.Since(start).Seconds()
			slack = 2
		}
		total := allowed[0] + allowed[1]
		if math.Abs(float64(total)-want) > slack || allowed[0] == 0 || allowed[1] == 0 {
			t.Fatalf("instances allowed %v, want ≈ %.1f between them", allowed, want)
		}

		// Another subscription has a budget of its own.
		if ok, _, _ := instances[0].Allow(ctx, "sub_other", perSecond); !ok {
			t.Fatal("a different subscription was limited")
		}
	})
}

func TestBurst(t *testing.T) {
	for perSecond, want := range map[int]int{1: 1, 9: 1, 10: 1, 50: 5, 1000: 100} {
		if got := burst(perSecond); got != want {
			t.Errorf("burst(%d) = %d, want %d", perSecond, got, want)
		}
	}
}

func TestLimiterUnlimitedNeedsNoRedis(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	rdb.Close()
	l := NewLimiter(rdb)
	for _, perSecond := range []int{0, -1} {
		ok, _, err := l.Allow(context.Background(), "sub_a", perSecond)
		if !ok || err != nil {
			t.Fatalf("Allow(perSecond=%d) = %v, %v", perSecond, ok, err)
		}
	}
}

func TestLimiterFailsOpen(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	core, logs := observer.New(zapcore.WarnLevel)
	l := NewLimiter(rdb, WithLogger(zap.New(core)))
	mr.Close()

	for range 3 {
		ok, _, err := l.Allow(context.Background(), "sub_a", 10)
		if !ok || err == nil {
			t.Fatalf("Allow with Redis down = %v, %v; want true and the error", ok, err)
		}
	}
	if l.Errors() != 3 {
		t.Fatalf("Errors() = %d, want 3", l.Errors())
	}
	if logs.Len() != 1 {
		t.Fatalf("logged %d times, want once a minute", logs.Len())
	}
}
