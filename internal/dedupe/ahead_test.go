package dedupe

import (
	"context"
	"testing"
	"time"
)

func mustWait(t *testing.T, l *Lease, want State) {
	t.Helper()
	if l == nil {
		t.Fatal("Ask returned nil on a deferred autopipeliner")
	}
	got, err := l.Wait(context.Background())
	if err != nil {
		t.Fatalf("Wait(%s): %v", l.id, err)
	}
	if got != want {
		t.Fatalf("Wait(%s) = %v, want %v", l.id, got, want)
	}
}

// TestAskAnswersAsAcquire: a lease sent ahead answers what Acquire would,
// lasts as long as asked, is held by its Store once Acquired (Release
// drops it), and is sent at the time Asked reports.
func TestAskAnswersAsAcquire(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		clock := newFakeClock()
		s := deferredStore(t, b.rdb, WithPrefix("herald:ask:"), WithClock(clock.Now))
		other := deferredStore(t, b.rdb, WithPrefix("herald:ask:"))

		first := s.Ask(ctx, "msg_1", lease)
		second := other.Ask(ctx, "msg_1", lease)
		mustWait(t, first, Acquired)
		mustWait(t, second, Busy)
		if got := first.Asked(); !got.Equal(clock.Now()) {
			t.Fatalf("Asked() = %v, want the Store's clock at Ask, %v", got, clock.Now())
		}
		if ttl := b.rdb.PTTL(ctx, "herald:ask:msg_1").Val(); ttl <= 0 || ttl > lease {
			t.Fatalf("lease has TTL %v, want (0, %v]", ttl, lease)
		}

		// Acquired means held: Release gives it back, and the other
		// Store's next lease is taken.
		if err := s.Release(ctx, "msg_1"); err != nil {
			t.Fatal(err)
		}
		mustWait(t, other.Ask(ctx, "msg_1", lease), Acquired)
		if err := other.MarkDone(ctx, "msg_1"); err != nil {
			t.Fatal(err)
		}
		if err := other.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		mustWait(t, s.Ask(ctx, "msg_1", lease), Done)
		if s.Errors() != 0 || other.Errors() != 0 {
			t.Fatalf("Errors() = %d, %d; want 0", s.Errors(), other.Errors())
		}
	})
}

// TestAskOnlyOnDeferredAutopipeliner: a Store on any other client sends
// nothing ahead, and its caller takes the lease with Acquire.
func TestAskOnlyOnDeferredAutopipeliner(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		s := New(b.rdb, WithPrefix("herald:ask-plain:"))
		if l := s.Ask(context.Background(), "msg_1", lease); l != nil {
			t.Fatal("Ask sent a lease on a client that is not a deferred autopipeliner")
		}
		if n := b.rdb.Exists(context.Background(), "herald:ask-plain:msg_1").Val(); n != 0 {
			t.Fatal("Ask returned nil but took a lease")
		}
	})
}

// TestAskBeforeRedis7: a lease sent ahead to a server that refuses SET NX
// GET is taken by the script when it is waited for, and from then on Ask
// sends nothing ahead.
func TestAskBeforeRedis7(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := commands{before7: true}
		s := deferredStore(t, hooked(t, b, &c), WithPrefix("herald:ask-old:"))

		mustWait(t, s.Ask(ctx, "msg_1", lease), Acquired)
		mustAcquire(t, s, "msg_1", Busy)
		if !s.scriptOnly.Load() {
			t.Fatal("the Store still sends SET NX GET after the server refused it")
		}
		if l := s.Ask(ctx, "msg_2", time.Second); l != nil {
			t.Fatal("Ask sends leases ahead on a server that takes them only by script")
		}
		if s.Errors() != 0 {
			t.Fatalf("the refusal counted as a failure: %d", s.Errors())
		}
	})
}
