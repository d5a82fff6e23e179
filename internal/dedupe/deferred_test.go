package dedupe

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/herald-dev/herald/internal/testkit"
)

// deferredStore is a Store on a deferred autopipeliner of b, as herald
// builds it, and the autopipeliner to close.
func deferredStore(t *testing.T, rdb redis.UniversalClient, opts ...Option) *Store {
	t.Helper()
	ap, err := rdb.(*redis.Client).AsyncAutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ap.Close() })
	return New(ap, opts...)
}

// TestDeferredDoneMarks: on a deferred autopipeliner the leases still
// answer, and the done marks MarkDone queued are all in Redis after Flush,
// each making the delivery Done for the next Acquire.
func TestDeferredDoneMarks(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := deferredStore(t, b.rdb, WithPrefix("herald:deferred:"))
		if s.deferred == nil {
			t.Fatal("a Store on AsyncAutoPipeline does not queue its done marks")
		}
		const n = 200
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprintf("msg_%d", i)
				mustAcquire(t, s, id, Acquired)
				if err := s.MarkDone(ctx, id); err != nil {
					t.Errorf("MarkDone(%s): %v", id, err)
				}
			})
		}
		wg.Wait()
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if q := len(s.done.q) - s.done.head; q != 0 {
			t.Fatalf("%d done marks still queued after Flush", q)
		}
		for i := range n {
			key := fmt.Sprintf("herald:deferred:msg_%d", i)
			if v, err := b.rdb.Get(ctx, key).Result(); err != nil || v != doneValue {
				t.Fatalf("%s = %q, %v after Flush; want %q", key, v, err, doneValue)
			}
			if ttl := b.rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 7*24*time.Hour {
				t.Fatalf("%s has TTL %v, want the done TTL", key, ttl)
			}
		}
		mustAcquire(t, s, "msg_0", Done)
		if s.Errors() != 0 {
			t.Fatalf("Errors() = %d, want 0", s.Errors())
		}
	})
}

// TestDeferredDoneMarkDoesNotWait: with Redis hanging, MarkDone on a
// deferred autopipeliner returns at once (on a plain client it would wait
// for the read timeout), Flush waits for the mark until its context ends,
// and past maxQueuedDone queued marks MarkDone waits for its own and
// reports its failure.
func TestDeferredDoneMarkDoesNotWait(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testkit.SilentListener(t), MaxRetries: -1,
		ReadTimeout: time.Second, WriteTimeout: time.Second, DialTimeout: time.Second})
	defer rdb.Close()
	s := deferredStore(t, rdb)
	ctx := context.Background()

	defer func(n int) { maxQueuedDone = n }(maxQueuedDone)
	maxQueuedDone = 2
	start := time.Now()
	for i := range 2 {
		if err := s.MarkDone(ctx, fmt.Sprint("msg_", i)); err != nil {
			t.Fatalf("queued MarkDone: %v", err)
		}
	}
	if took := time.Since(start); took >= time.Second {
		t.Fatalf("two queued MarkDone calls took %v: they waited for Redis", took)
	}
	fctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.Flush(fctx); err == nil {
		t.Fatal("Flush returned nil while Redis had answered nothing")
	}
	if err := s.MarkDone(ctx, "msg_2"); err == nil {
		t.Fatal("MarkDone past the queue's bound returned nil: it did not wait for Redis")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Errors(); got != 3 {
		t.Fatalf("Errors() = %d after three marks timed out, want 3", got)
	}
}

// TestDeferredDoneMarkFailureIsCounted: a mark Redis refuses is counted
// when its reply is read, by a later MarkDone or by Flush.
func TestDeferredDoneMarkFailureIsCounted(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	defer rdb.Close()
	s := deferredStore(t, rdb)
	ctx := context.Background()
	mr.SetError("READONLY You can't write against a read only replica.")
	for i := range 3 {
		if err := s.MarkDone(ctx, fmt.Sprint("msg_", i)); err != nil {
			t.Fatalf("queued MarkDone: %v", err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Errors(); got != 3 {
		t.Fatalf("Errors() = %d after three refused marks, want 3", got)
	}
}

// TestFlushOnPlainClient: MarkDone waits by itself there, so Flush has
// nothing to wait for.
func TestFlushOnPlainClient(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		s := New(b.rdb)
		if s.deferred != nil {
			t.Fatal("a plain client taken for a deferred autopipeliner")
		}
		ap, err := b.rdb.(*redis.Client).AutoPipeline()
		if err != nil {
			t.Fatal(err)
		}
		defer ap.Close()
		if New(ap).deferred != nil {
			t.Fatal("a blocking autopipeliner taken for a deferred one")
		}
		ctx := context.Background()
		if err := s.MarkDone(ctx, "msg_plain"); err != nil {
			t.Fatal(err)
		}
		fctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Flush(fctx); err != nil {
			t.Fatalf("Flush with nothing queued: %v", err)
		}
	})
}
