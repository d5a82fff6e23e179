package dedupe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxQueuedDone bounds the done marks sent through a deferred
// autopipeliner whose replies have not been read. Past it, MarkDone waits
// for its own mark, as on any other client: a Redis that stopped answering
// slows the callers down instead of growing the queue.
var maxQueuedDone = 1 << 16

// doneQueue holds the futures of done marks sent through a deferred
// autopipeliner, oldest first, until their replies are read.
type doneQueue struct {
	mu   sync.Mutex
	q    []redis.AutoFuture
	head int
}

// deferredOf returns rdb when it is a deferred (async) autopipeliner, on
// which a command is queued without waiting for its reply.
func deferredOf(rdb redis.UniversalClient) *redis.AutoPipeliner {
	if ap, ok := rdb.(*redis.AutoPipeliner); ok && !ap.IsBlocking() {
		return ap
	}
	return nil
}

// markDoneDeferred queues the done mark of key on the deferred
// autopipeliner and returns without waiting for Redis, unless maxQueuedDone
// marks are already waiting: it then waits for this one. The replies that
// have arrived meanwhile are read here, and their failures counted.
func (s *Store) markDoneDeferred(ctx context.Context, key string) error {
	f := s.deferred.Submit(ctx, redis.NewStatusCmd(ctx, "set", key, doneValue, "px", s.doneTTL.Milliseconds()))
	d := &s.done
	d.mu.Lock()
	d.q = append(d.q, f)
	s.reapLocked()
	backlog := len(d.q) - d.head
	d.mu.Unlock()
	if backlog <= maxQueuedDone {
		return nil
	}
	// Its reply is read again, and its failure counted, when it reaches
	// the head of the queue.
	if err := f.Wait(); err != nil {
		return fmt.Errorf("dedupe: mark done: %w", err)
	}
	return nil
}

// reapLocked reads the replies at the head of the queue that have arrived,
// counting failures, and stops at the first still on its way.
func (s *Store) reapLocked() {
	d := &s.done
	for d.head < len(d.q) {
		err := d.q[d.head].WaitContext(notYet{})
		if errors.Is(err, errNotYet) {
			break
		}
		d.q[d.head] = redis.AutoFuture{}
		d.head++
		if err != nil {
			_ = s.fail("mark done", err)
		}
	}
	switch {
	case d.head == len(d.q):
		d.q, d.head = d.q[:0], 0
	case d.head >= 1024 && d.head*2 >= len(d.q):
		n := copy(d.q, d.q[d.head:])
		clear(d.q[n:])
		d.q, d.head = d.q[:n], 0
	}
}

// Flush waits until every done mark MarkDone queued has been answered, or
// ctx ends. Call it before closing the Redis client, once nothing calls
// MarkDone any more. On other clients than a deferred autopipeliner
// MarkDone waits by itself, and Flush returns at once.
func (s *Store) Flush(ctx context.Context) error {
	d := &s.done
	for {
		d.mu.Lock()
		s.reapLocked()
		if d.head == len(d.q) {
			d.mu.Unlock()
			return nil
		}
		f := d.q[d.head]
		d.mu.Unlock()
		_ = f.WaitContext(ctx) // a failure is counted by reapLocked
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dedupe: flushing done marks: %w", err)
		}
	}
}

var errNotYet = errors.New("not answered yet")

// notYet is a context that has already ended with errNotYet: waiting on a
// future with it only looks whether the reply is in.
type notYet struct{}

var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (notYet) Deadline() (time.Time, bool) { return time.Time{}, false }
func (notYet) Done() <-chan struct{}       { return closed }
func (notYet) Err() error                  { return errNotYet }
func (notYet) Value(any) any               { return nil }
