package dedupe

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// lease is long enough that a loaded machine does not expire it mid-test on
// a real server; miniredis only expires it when told.
const lease = time.Second

func mustAcquire(t *testing.T, s *Store, id string, want State) {
	t.Helper()
	got, err := s.Acquire(context.Background(), id, lease)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", id, err)
	}
	if got != want {
		t.Fatalf("Acquire(%s) = %v, want %v", id, got, want)
	}
}

func TestAcquireBusyDone(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		a := New(b.rdb, WithDoneTTL(time.Hour))
		other := New(b.rdb)

		mustAcquire(t, a, "msg_1", Acquired)
		mustAcquire(t, other, "msg_1", Busy)
		mustAcquire(t, a, "msg_1", Busy) // one attempt at a time, even on one instance

		if err := a.MarkDone(ctx, "msg_1"); err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, other, "msg_1", Done)
		mustAcquire(t, a, "msg_1", Done)

		ttl, err := b.rdb.PTTL(ctx, "herald:d:msg_1").Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 59*time.Minute || ttl > time.Hour {
			t.Fatalf("done mark TTL = %v, want the retry horizon (1h)", ttl)
		}
		if a.Errors() != 0 || other.Errors() != 0 {
			t.Fatalf("errors counted without a failure: %d, %d", a.Errors(), other.Errors())
		}
	})
}

func TestLeaseExpiryLetsAnotherAcquire(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		a := New(b.rdb)
		other := New(b.rdb)

		mustAcquire(t, a, "msg_crashed", Acquired)
		mustAcquire(t, other, "msg_crashed", Busy)
		b.advance(lease + 200*time.Millisecond) // a crashed without Release
		mustAcquire(t, other, "msg_crashed", Acquired)
	})
}

func TestReleaseLetsRetryAcquire(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		a := New(b.rdb)
		other := New(b.rdb)

		mustAcquire(t, a, "msg_failed", Acquired)
		if err := a.Release(ctx, "msg_failed"); err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, other, "msg_failed", Acquired)
	})
}

// Pins the bug where a slow attempt, whose lease had expired, deleted the
// lease of the retry that took over and let a third attempt run alongside.
func TestReleaseKeepsAnotherAttemptsLease(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		slow := New(b.rdb)
		retry := New(b.rdb)
		third := New(b.rdb)

		mustAcquire(t, slow, "msg_slow", Acquired)
		b.advance(lease + 200*time.Millisecond)
		mustAcquire(t, retry, "msg_slow", Acquired)

		if err := slow.Release(ctx, "msg_slow"); err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, third, "msg_slow", Busy)

		if err := retry.MarkDone(ctx, "msg_slow"); err != nil {
			t.Fatal(err)
		}
		if err := retry.Release(ctx, "msg_slow"); err != nil { // late Release after success
			t.Fatal(err)
		}
		mustAcquire(t, third, "msg_slow", Done)
	})
}

func TestReleaseWithoutLeaseDoesNothing(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		a := New(b.rdb)
		other := New(b.rdb)

		mustAcquire(t, other, "msg_theirs", Acquired)
		if err := a.Release(ctx, "msg_theirs"); err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, a, "msg_theirs", Busy)
	})
}

func TestAcquireMany(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		a := New(b.rdb)
		other := New(b.rdb)

		mustAcquire(t, other, "msg_done", Acquired)
		if err := other.MarkDone(ctx, "msg_done"); err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, other, "msg_leased", Acquired)

		ids := []string{"msg_new1", "msg_done", "msg_leased", "msg_new2", "msg_new1"}
		got, err := a.AcquireMany(ctx, ids, lease)
		if err != nil {
			t.Fatal(err)
		}
		want := []State{Acquired, Done, Busy, Acquired, Busy}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("AcquireMany(%v) = %v, want %v", ids, got, want)
			}
		}

		// The batch's leases are ours to release, one by one.
		if err := a.Release(ctx, "msg_new2"); err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, other, "msg_new2", Acquired)

		if err := a.MarkDoneMany(ctx, []string{"msg_new1", "msg_leased"}); err != nil {
			t.Fatal(err)
		}
		got, err = other.AcquireMany(ctx, []string{"msg_new1", "msg_leased", "msg_done"}, lease)
		if err != nil {
			t.Fatal(err)
		}
		for i, st := range got {
			if st != Done {
				t.Fatalf("after MarkDoneMany, state %d = %v, want done", i, st)
			}
		}

		if got, err := a.AcquireMany(ctx, nil, lease); err != nil || len(got) != 0 {
			t.Fatalf("AcquireMany(nil) = %v, %v", got, err)
		}
	})
}

// A fresh server (or a Cluster node that restarted) has no cached scripts:
// the batch must fall back to EVAL without taking any lease twice.
func TestAcquireManyAfterScriptFlush(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	s := New(rdb)
	ctx := context.Background()

	if _, err := s.AcquireMany(ctx, []string{"a", "b"}, lease); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.AcquireMany(ctx, []string{"a", "c"}, lease)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != Busy || got[1] != Acquired {
		t.Fatalf("after SCRIPT FLUSH: %v, want [busy acquired]", got)
	}
}

func TestRedisDownDeliversAnyway(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	core, logs := observer.New(zapcore.WarnLevel)
	clk := newFakeClock()
	s := New(rdb, WithLogger(zap.New(core)), WithClock(clk.Now))
	ctx := context.Background()
	mr.Close()

	for range 3 {
		st, err := s.Acquire(ctx, "msg_x", lease)
		if err == nil || st != Acquired {
			t.Fatalf("Acquire with Redis down = %v, %v; want acquired and an error", st, err)
		}
	}
	states, err := s.AcquireMany(ctx, []string{"a", "b"}, lease)
	if err == nil || states[0] != Acquired || states[1] != Acquired {
		t.Fatalf("AcquireMany with Redis down = %v, %v; want all acquired and an error", states, err)
	}
	if err := s.MarkDone(ctx, "msg_x"); err == nil {
		t.Fatal("MarkDone with Redis down: no error")
	}
	if err := s.MarkDoneMany(ctx, []string{"a", "b"}); err == nil {
		t.Fatal("MarkDoneMany with Redis down: no error")
	}
	if got := s.Errors(); got != 6 {
		t.Fatalf("Errors() = %d, want 6", got)
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("logged %d times within a minute, want once", n)
	}

	clk.Advance(61 * time.Second)
	_, _ = s.Acquire(ctx, "msg_y", lease)
	if n := logs.Len(); n != 2 {
		t.Fatalf("logged %d times after a minute, want 2", n)
	}
	if got := logs.All()[1].ContextMap()["redis_errors_total"]; got != uint64(7) {
		t.Fatalf("redis_errors_total = %v, want 7", got)
	}
}

func TestCancelledCallerIsNotARedisError(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		s := New(b.rdb)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Acquire(ctx, "msg_c", lease); err == nil {
			t.Fatal("Acquire on a cancelled context: no error")
		}
		if s.Errors() != 0 {
			t.Fatalf("Errors() = %d, want 0", s.Errors())
		}
	})
}

func TestStateString(t *testing.T) {
	for st, want := range map[State]string{Acquired: "acquired", Done: "done", Busy: "busy", 9: "state(9)"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q, want %q", st, st.String(), want)
		}
	}
}
