package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/herald-dev/herald/internal/dedupe"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
)

// Job is one delivery of one event to one subscription, on one attempt. The
// dispatcher makes jobs from source records; the retry tier consumer makes
// them from retry records. Both run the same path.
type Job struct {
	Event          *event.Event // shared by every job fanned out of one record
	Subscription   *subscription.Subscription
	DeliveryID     string
	Attempt        int       // 1-based: the attempt about to be made
	FirstAttemptAt time.Time // zero before the first attempt
	// OriginTraceParent is the producer's context, never overwritten across
	// hops; Event.TraceParent is the context of the previous hop.
	OriginTraceParent string
	// Tier is the retry tier the job came from, empty for a first attempt.
	Tier string
	// Replay marks a delivery re-injected from the dead-letter queue.
	Replay bool

	// Abandon, when closed before the attempt starts, makes the job finish
	// as Abandoned without being attempted: its partition was revoked or the
	// process is stopping, and the next owner will deliver it. Nil never
	// abandons.
	Abandon <-chan struct{}

	// Done is called exactly once when the job is finished: delivered,
	// handed to a retry tier (broker acked), dead-lettered, or dropped with
	// an outcome. The source advances its offset only then.
	Done func(Result)

	// slots is the endpoint's semaphore of requests in flight, set by the
	// dispatcher when a worker takes the job; nil (a job run outside a
	// dispatcher) never waits. holding is true between HoldSlot and
	// ReleaseSlot.
	slots   chan struct{}
	holding bool
	// prep is locked while a worker prepares the job ahead of its turn
	// (WithPreparer); lease is the lease it sent, which the attempt takes.
	prep  sync.Mutex
	lease *dedupe.Lease
	// admitted is the admission tick the job was counted in, plus one; 0
	// when it is not counted (see Dispatcher.unadmit).
	admitted int64
}

// HoldSlot waits for one of the max_in_flight request slots of the job's
// endpoint. The dispatcher runs more attempts of an endpoint at once than
// it has slots, so that what an attempt does before and after its request
// (dedupe, signing, outcomes) overlaps other attempts' requests, while no
// more than max_in_flight requests are ever open to the endpoint. It
// returns an error, holding nothing, when ctx ends or the job's partition
// is revoked first.
func (j *Job) HoldSlot(ctx context.Context) error {
	if j.slots == nil || j.holding {
		return nil
	}
	select {
	case j.slots <- struct{}{}:
		j.holding = true
		return nil
	default:
	}
	select {
	case j.slots <- struct{}{}:
		j.holding = true
		return nil
	case <-j.Abandon: // a nil channel never fires
		return errRevoked
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReleaseSlot gives back the slot HoldSlot took; it does nothing when none
// is held, so it may be deferred and also called early.
func (j *Job) ReleaseSlot() {
	if j.holding {
		j.holding = false
		<-j.slots
	}
}

// Step is what happened to a job.
type Step uint8

const (
	Delivered    Step = iota // 2xx
	Retried                  // handed to a retry tier; attempt spent
	Parked                   // handed to a retry tier; no attempt spent (endpoint, not event, at fault)
	DeadLettered             // to herald.dlq
	Dropped                  // finished with an outcome and nothing else: duplicate, deleted, disabled, rejected
	Abandoned                // not finished: shutdown or revoke before it started; the offset must not move past it
)

func (s Step) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Retried:
		return "retried"
	case Parked:
		return "parked"
	case DeadLettered:
		return "dead_lettered"
	case Dropped:
		return "dropped"
	case Abandoned:
		return "abandoned"
	}
	return "unknown"
}

// Result is what Done receives.
type Result struct {
	Step Step
	Err  error // why, for Abandoned and failed hand-offs
}
