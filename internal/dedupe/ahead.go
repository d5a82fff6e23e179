package dedupe

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is a lease sent ahead of its attempt by Store.Ask: its command
// rides the next pipeline while the attempt waits for its turn, and Wait
// gives what Acquire would have given.
type Lease struct {
	s     *Store
	id    string
	value string
	ms    int64
	at    time.Time
	f     redis.AutoFuture
	cmd   *redis.Cmd

	answered bool
	st       State
	err      error
}

// Ask sends the lease of deliveryID without waiting for Redis, and returns
// nil when the Store cannot: its client is not a deferred autopipeliner
// (redis.Client.AsyncAutoPipeline), or the server takes leases only by
// script. Nothing is held until Wait says Acquired; a Lease no one waits
// for lapses after lease.
func (s *Store) Ask(ctx context.Context, deliveryID string, lease time.Duration) *Lease {
	if s.deferred == nil || s.scriptOnly.Load() {
		return nil
	}
	l := &Lease{s: s, id: deliveryID, value: s.leaseValue(), ms: leaseMillis(lease), at: s.now()}
	l.cmd = leaseCmd(ctx, s.prefix+deliveryID, l.value, l.ms)
	l.f = s.deferred.Submit(ctx, l.cmd)
	return l
}

// Asked is when the lease was sent: it runs out its length after that.
func (l *Lease) Asked() time.Time { return l.at }

// Wait waits for the answer to the lease and reports it as Acquire does:
// Acquired together with the error when Redis failed, so that the caller
// delivers anyway. After Acquired, call MarkDone or Release as after
// Acquire. Later calls give the same answer.
func (l *Lease) Wait(ctx context.Context) (State, error) {
	if !l.answered {
		l.st, l.err = l.wait(ctx)
		l.answered = true
	}
	return l.st, l.err
}

func (l *Lease) wait(ctx context.Context) (State, error) {
	_ = l.f.WaitContext(ctx)
	return l.s.answer(ctx, l.id, l.value, l.ms, l.cmd)
}
