package dispatch

import (
	"context"
	"time"
)

// Retrier hands jobs that did not finish on this attempt to Kafka: a retry
// tier, or the dead-letter topic. Both return only after the broker acked,
// so the source offset may move on.
type Retrier interface {
	Retry(ctx context.Context, j *Job, r Retry) error
	DeadLetter(ctx context.Context, j *Job, why DeadLetter) error
}

// Retry says how to reschedule a job.
type Retry struct {
	// Park keeps the attempt number: the endpoint (rate limit, open
	// circuit, saturation, pause), not the event, is why it was not sent.
	Park bool
	// After is a minimum delay asked for by the receiver (Retry-After) or by
	// a limiter; zero lets the schedule decide.
	After time.Duration
	// LastStatus and LastError describe the attempt that failed.
	LastStatus int
	LastError  string
	// AttemptedAt is when the failed attempt was made.
	AttemptedAt time.Time
}

// DeadLetter says why a job gives up.
type DeadLetter struct {
	Reason      string // "attempts_exhausted", "non_retryable", "aborted", "corrupt_record", …
	LastStatus  int
	LastError   string
	AttemptedAt time.Time
}
