package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// EnvRedis names the variable holding the URL of a real Redis
// (redis://host:port/db). When it is empty, Redis starts a miniredis.
const EnvRedis = "HERALD_TEST_REDIS"

const (
	// leaseKeyPrefix + db index is the key, in the URL's own database, that
	// marks a database as taken by one test.
	leaseKeyPrefix = "herald:testkit:lease:"
	// leaseTTL outlives the longest test run (make test: -timeout 20m), so a
	// lease ends with its test; the TTL only frees the databases of a test
	// process that was killed.
	leaseTTL = time.Hour
	// leaseWait bounds how long a test queues for a free database.
	leaseWait = 2 * time.Minute
)

// RealRedis reports whether Redis returns a real server (HERALD_TEST_REDIS
// is set) rather than a miniredis.
func RealRedis() bool { return os.Getenv(EnvRedis) != "" }

// Redis returns a redis:// URL whose database belongs to this test alone
// until it ends, and starts empty.
//
// Embedded, that is a fresh miniredis. Real, the server is shared by every
// test of the run, so each test leases one database (SELECT index) of its
// own: a SET NX key in the base URL's database marks the index as taken
// across test processes; the database is flushed when taken and when given
// back. A counter modulo the database count would hand one index to two live
// tests; the lease cannot. With every database taken, Redis waits for one.
// The server needs more than one database (deploy/local/redis.sh configures
// 256), so Redis Cluster, which has only database 0, cannot be used.
func Redis(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvRedis)
	if base == "" {
		m := miniredis.RunT(t)
		return "redis://" + m.Addr() + "/0"
	}
	u, err := leaseDB(t, base)
	if err != nil {
		t.Fatalf("testkit: %s=%s: %v", EnvRedis, base, err)
	}
	return u
}

func leaseDB(t testing.TB, base string) (string, error) {
	opts, err := redis.ParseURL(base)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaseWait)
	defer cancel()
	registry := redis.NewClient(opts)
	defer registry.Close()

	n, err := databases(ctx, registry)
	if err != nil {
		return "", err
	}
	if n < 2 {
		return "", fmt.Errorf("server has %d database; tests need one each besides %d", n, opts.DB)
	}
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return "", err
	}
	owner := t.Name() + "/" + hex.EncodeToString(tok[:])

	// Start at a random index so that parallel tests do not all race for 1.
	start, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return "", err
	}
	for {
		for i := range n {
			db := (int(start.Int64()) + i) % n
			if db == opts.DB {
				continue
			}
			ok, err := registry.SetNX(ctx, leaseKeyPrefix+strconv.Itoa(db), owner, leaseTTL).Result()
			if err != nil {
				return "", fmt.Errorf("leasing database %d: %w", db, err)
			}
			if !ok {
				continue
			}
			if err := flushDB(ctx, opts, db); err != nil {
				release(opts, db, owner)
				return "", err
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := flushDB(ctx, opts, db); err != nil {
					t.Logf("testkit: %v", err)
				}
				release(opts, db, owner)
			})
			return withDB(base, db)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("all %d databases stayed leased to other tests for %v", n-1, leaseWait)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// databases reads the server's database count, assuming Redis's default of
// 16 where CONFIG is disabled (managed services).
func databases(ctx context.Context, c *redis.Client) (int, error) {
	if err := c.Ping(ctx).Err(); err != nil {
		return 0, err
	}
	res, err := c.ConfigGet(ctx, "databases").Result()
	if err != nil {
		return 16, nil // CONFIG disabled: use the default
	}
	n, err := strconv.Atoi(res["databases"])
	if err != nil {
		return 16, nil // not reported: use the default
	}
	return n, nil
}

func flushDB(ctx context.Context, base *redis.Options, db int) error {
	opts := *base
	opts.DB = db
	c := redis.NewClient(&opts)
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flushing database %d: %w", db, err)
	}
	return nil
}

// releaseScript deletes the lease only if this test still holds it.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

func release(base *redis.Options, db int, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(base)
	defer c.Close()
	// A failure leaves the lease to expire with its TTL.
	_ = releaseScript.Run(ctx, c, []string{leaseKeyPrefix + strconv.Itoa(db)}, owner).Err()
}

// withDB returns base with its database index replaced by db, keeping
// credentials, TLS scheme and query options.
func withDB(base string, db int) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Path = "/" + strconv.Itoa(db)
	u.RawPath = ""
	q := u.Query()
	if q.Has("db") {
		q.Set("db", strconv.Itoa(db))
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}
