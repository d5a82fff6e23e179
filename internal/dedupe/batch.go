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
			cmds[i] = s.acquireCmd(ctx, p, s.prefix+id, values[i], ms)
		}
		return nil
	})

	var firstErr error
	// settle records what the server answered for ids[i]. On a failure
	// the id counts as Acquired, without a lease to release.
	settle := func(i int, st State, err error) {
		if err != nil {
			st = Acquired
			if firstErr == nil {
				firstErr = err
			}
		} else if st == Acquired {
			s.hold(ids[i], values[i])
		}
		states[i] = st
	}
	var again []int // refused or not cached by the server: run as scripts
	for i, c := range cmds {
		st, refused, err := s.acquired(c)
		if refused {
			again = append(again, i)
			continue
		}
		settle(i, st, err)
	}
	if len(again) > 0 {
		// EVAL runs the script and caches it on the server for the next
		// batch. Only commands that did nothing are run again: the
		// others may have taken a lease already.
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range again {
				cmds[i] = acquireScript.Eval(ctx, p, []string{s.prefix + ids[i]}, values[i], ms)
			}
			return nil
		})
		for _, i := range again {
			st, _, err := s.acquired(cmds[i])
			settle(i, st, err)
		}
	}
	if firstErr != nil {
		return states, s.fail("acquire batch", firstErr)
	}
	return states, nil
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
