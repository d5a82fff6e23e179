package dispatch

import (
	"time"

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
