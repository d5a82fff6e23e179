package dispatch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/dedupe"
	"github.com/herald-dev/herald/internal/outcome"
)

// denyFor is a RateLimiter that refuses the first n requests, each with a
// retry-after of after.
type denyFor struct {
	n     int64
	after time.Duration
	calls atomic.Int64
}

func (d *denyFor) Allow(context.Context, string, int) (bool, time.Duration, error) {
	if d.calls.Add(1) <= d.n {
		return false, d.after, nil
	}
	return true, 0, nil
}

// TestRateLimitWaitsBeforeParking pins a bug: every rate-limited attempt
// was parked at once, so a backlog came back from its tier together, found
// a bucket of burst tokens and was parked again: a subscription limited to
// 20/s delivered 1 to 5 a second, and 0.2 a second behind the default 10s
// tier. An attempt whose token is near now waits for it in place.
func TestRateLimitWaitsBeforeParking(t *testing.T) {
	t.Run("token within the wait", func(t *testing.T) {
		f := newFixture(t, status(204))
		f.sub.RateLimitPerSecond = 20
		f.a.Limiter = &denyFor{n: 3, after: 20 * time.Millisecond}
		if got := f.a.Handle(context.Background(), f.job(1)); got.Step != Delivered {
			t.Fatalf("step %v, want delivered after waiting for the token", got.Step)
		}
		if s := f.outs.states(); len(s) != 1 || s[0] != outcome.Delivered {
			t.Fatalf("outcomes %v", s)
		}
	})
	t.Run("token beyond the wait", func(t *testing.T) {
		f := newFixture(t, status(204))
		f.sub.RateLimitPerSecond = 20
		f.a.Limiter = &denyFor{n: 100, after: 200 * time.Millisecond}
		f.a.RateLimitWait = 300 * time.Millisecond
		j := f.job(1)
		if got := f.a.Handle(context.Background(), j); got.Step != Parked {
			t.Fatalf("step %v, want parked once the wait is spent", got.Step)
		}
		if c := f.ret.last(); !c.park || c.r.After != 200*time.Millisecond {
			t.Fatalf("park %+v, want the limiter's delay", c)
		}
		// The lease taken before the limiter is given back for the retry.
		if st, _ := f.a.Dedupe.Acquire(context.Background(), j.DeliveryID, time.Second); st != dedupe.Acquired {
			t.Fatalf("lease after parking: %v, want it released", st)
		}
	})
	t.Run("revoked while waiting", func(t *testing.T) {
		f := newFixture(t, status(204))
		f.sub.RateLimitPerSecond = 20
		f.a.Limiter = &denyFor{n: 100, after: 50 * time.Millisecond}
		f.a.RateLimitWait = time.Hour
		j := f.job(1)
		abandon := make(chan struct{})
		j.Abandon = abandon
		time.AfterFunc(100*time.Millisecond, func() { close(abandon) })
		if got := f.a.Handle(context.Background(), j); got.Step != Abandoned {
			t.Fatalf("step %v, want abandoned when the partition is revoked", got.Step)
		}
		if st, _ := f.a.Dedupe.Acquire(context.Background(), j.DeliveryID, time.Second); st != dedupe.Acquired {
			t.Fatalf("lease after the revoke: %v, want it released", st)
		}
	})
}
