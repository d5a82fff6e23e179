package testkit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisEmbeddedWhenUnset(t *testing.T) {
	t.Setenv(EnvRedis, "")
	if RealRedis() {
		t.Fatal("RealRedis() with HERALD_TEST_REDIS empty")
	}
	ctx := context.Background()
	a, b := redisClient(t, Redis(t)), redisClient(t, Redis(t))
	if err := a.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("second embedded Redis sees the first one's key: err = %v", err)
	}
}

func TestRedisRealWhenSet(t *testing.T) {
	base := os.Getenv(EnvRedis)
	if base == "" {
		t.Skip("HERALD_TEST_REDIS not set (make test sets it)")
	}
	url := Redis(t)
	got, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := redis.ParseURL(base)
	if got.Addr != want.Addr {
		t.Fatalf("Redis() = %s, want a database of %s", url, base)
	}
	if got.DB == want.DB {
		t.Fatalf("Redis() = %s hands out the lease registry's database %d", url, want.DB)
	}
	// miniredis has no INFO server section.
	info, err := redisClient(t, url).Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(info, "redis_mode:standalone") {
		t.Fatalf("INFO server does not look like redis-server:\n%s", info)
	}
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSuffix(l, "\r") == line {
			return true
		}
	}
	return false
}

// Parallel tests sharing one real Redis must never share a database: each
// writes its name and reads it back while the others do the same.
func TestRedisParallelTestsAreIsolated(t *testing.T) {
	var mu sync.Mutex
	inUse := map[string]string{}
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			url := Redis(t)
			mu.Lock()
			if other, ok := inUse[url]; ok {
				mu.Unlock()
				t.Fatalf("%s handed to %s while %s still runs", url, t.Name(), other)
			}
			inUse[url] = t.Name()
			mu.Unlock()
			// Registered after Redis, so it runs before the lease is given back.
			t.Cleanup(func() {
				mu.Lock()
				delete(inUse, url)
				mu.Unlock()
			})

			c := redisClient(t, url)
			ctx := context.Background()
			if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("fresh database holds %d keys (err %v)", n, err)
			}
			if err := c.Set(ctx, "owner", t.Name(), 0).Err(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			if got, err := c.Get(ctx, "owner").Result(); err != nil || got != t.Name() {
				t.Fatalf("owner = %q (err %v), want %q", got, err, t.Name())
			}
		})
	}
}

// leaseBases are the servers the lease logic is tested on: always a
// miniredis of the test's own, and the real Redis when there is one.
func leaseBases(t *testing.T) map[string]string {
	bases := map[string]string{"miniredis": "redis://" + miniredis.RunT(t).Addr() + "/0"}
	if RealRedis() {
		bases["real"] = os.Getenv(EnvRedis)
	}
	return bases
}

func TestLeaseFlushesAndReleases(t *testing.T) {
	for name, base := range leaseBases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rec := newRecorder(t)
			url, err := leaseDB(rec, base)
			if err != nil {
				t.Fatal(err)
			}
			opts, _ := redis.ParseURL(url)
			leaseKey := fmt.Sprintf("%s%d", leaseKeyPrefix, opts.DB)
			registry := redisClient(t, base)
			if owner, err := registry.Get(ctx, leaseKey).Result(); err != nil || owner == "" {
				t.Fatalf("no lease %s while leased (err %v)", leaseKey, err)
			}
			if ttl := registry.TTL(ctx, leaseKey).Val(); ttl <= 0 || ttl > leaseTTL {
				t.Fatalf("lease TTL = %v, want (0, %v]", ttl, leaseTTL)
			}
			c := redisClient(t, url)
			if err := c.Set(ctx, "left", "behind", 0).Err(); err != nil {
				t.Fatal(err)
			}

			rec.runCleanups()
			if n := c.DBSize(ctx).Val(); n != 0 {
				t.Fatalf("database %d holds %d keys after its test", opts.DB, n)
			}
			if n := registry.Exists(ctx, leaseKey).Val(); n != 0 {
				t.Fatalf("lease %s still held after its test", leaseKey)
			}
		})
	}
}

// With every database leased, the next test waits for one to be given back,
// and then gets that one, empty.
func TestLeaseWaitsForFreeDatabase(t *testing.T) {
	// CONFIG is not in miniredis, so Redis assumes the default 16 databases:
	// 15 besides the registry.
	base := "redis://" + miniredis.RunT(t).Addr() + "/0"
	ctx := context.Background()
	holders := make([]*recorder, 15)
	dbs := map[int]int{}
	for i := range holders {
		holders[i] = newRecorder(t)
		url, err := leaseDB(holders[i], base)
		if err != nil {
			t.Fatal(err)
		}
		opts, _ := redis.ParseURL(url)
		if opts.DB == 0 {
			t.Fatalf("leased the registry database: %s", url)
		}
		if prev, ok := dbs[opts.DB]; ok {
			t.Fatalf("database %d leased to holders %d and %d", opts.DB, prev, i)
		}
		dbs[opts.DB] = i
		if err := redisClient(t, url).Set(ctx, "holder", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, h := range holders {
			h.runCleanups()
		}
	})

	waiter := newRecorder(t)
	t.Cleanup(waiter.runCleanups)
	got := make(chan string, 1)
	go func() {
		url, err := leaseDB(waiter, base)
		if err != nil {
			t.Error(err)
		}
		got <- url
	}()
	select {
	case url := <-got:
		t.Fatalf("got %s while all 15 databases were leased", url)
	case <-time.After(300 * time.Millisecond):
	}

	const freed = 7
	holders[freed].runCleanups()
	select {
	case url := <-got:
		opts, _ := redis.ParseURL(url)
		if dbs[opts.DB] != freed {
			t.Fatalf("waiter got database %d (holder %d's), want the freed one of holder %d", opts.DB, dbs[opts.DB], freed)
		}
		if n := redisClient(t, url).DBSize(ctx).Val(); n != 0 {
			t.Fatalf("waiter's database holds %d keys", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not get the database given back")
	}
}

func TestWithDB(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"redis://127.0.0.1:16379/0", "redis://127.0.0.1:16379/5"},
		{"redis://127.0.0.1:16379", "redis://127.0.0.1:16379/5"},
		{"rediss://user:p%40ss@host:6380/2?dial_timeout=3s", "rediss://user:p%40ss@host:6380/5?dial_timeout=3s"},
	} {
		got, err := withDB(tc.base, 5)
		if err != nil || got != tc.want {
			t.Errorf("withDB(%q, 5) = %q, %v; want %q", tc.base, got, err, tc.want)
		}
	}
}
