package dedupe

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// AcquireMany is Acquire for a batch in one pipelined round trip (per
// Cluster node). states[i] belongs to ids[i]; an id repeated in the batch
// is Busy after its first occurrence. On a Redis failure the ids it
// touched are Acquired and the first error is returned.
func (s *Store) AcquireMany(ctx context.Context, ids []string, lease time.Duration) ([]State, error) {
	states := make([]State, len(ids))
	if len(ids) == 0 {
		return states, nil
	}
	ms := leaseMillis(lease)
	values := make([]string, len(ids))
	cmds := make([]*redis.Cmd, len(ids))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			values[i] = s.leaseValue()
			cmds[i] = p.EvalSha(ctx, acquireScript.Hash(), []string{s.prefix + id}, values[i], ms)
		}
		return nil
	})
	s.evalMissing(ctx, ids, values, ms, cmds)

	var firstErr error
	for i, c := range cmds {
		code, err := c.Int64()
		if err != nil {
			states[i] = Acquired
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		states[i] = State(code)
		if states[i] == Acquired {
			s.hold(ids[i], values[i])
		}
	}
	if firstErr != nil {
		return states, s.fail("acquire batch", firstErr)
	}
	return states, nil
}

// evalMissing reruns with EVAL the commands of nodes that had not cached
// the script yet; EVAL caches it there for the next batch. Only NOSCRIPT
// failures are rerun: the others may have taken a lease already.
func (s *Store) evalMissing(ctx context.Context, ids, values []string, ms int64, cmds []*redis.Cmd) {
	var missing []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return
	}
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, i := range missing {
			cmds[i] = acquireScript.Eval(ctx, p, []string{s.prefix + ids[i]}, values[i], ms)
		}
		return nil
	})
}

// MarkDoneMany is MarkDone for a batch in one pipelined round trip.
func (s *Store) MarkDoneMany(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		s.forget(id)
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Set(ctx, s.prefix+id, doneValue, s.doneTTL)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if c.Err() != nil {
			err = c.Err()
			break
		}
	}
	return s.fail("mark done batch", err)
}
