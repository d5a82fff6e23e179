package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/dedupe"
	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/subscription"
)

// The small interfaces the attempt path uses, each satisfied by the package
// named in its comment.
type (
	// Sender sends one request: *delivery.Client. Start writes it and
	// returns; the Pending's Wait waits for the response.
	Sender interface {
		Do(ctx context.Context, r *delivery.Request) delivery.Result
		Start(ctx context.Context, r *delivery.Request) *delivery.Pending
	}
	// Deduper suppresses repeated deliveries: *dedupe.Store.
	Deduper interface {
		Acquire(ctx context.Context, deliveryID string, lease time.Duration) (dedupe.State, error)
		MarkDone(ctx context.Context, deliveryID string) error
		Release(ctx context.Context, deliveryID string) error
	}
	// RateLimiter enforces rate_limit_per_second: *ratelimit.Limiter.
	RateLimiter interface {
		Allow(ctx context.Context, subscriptionID string, perSecond int) (bool, time.Duration, error)
	}
	// Breaker is a per-endpoint circuit breaker: *ratelimit.Breaker.
	Breaker interface {
		Allow(subscriptionID string) bool
		Success(subscriptionID string)
		Failure(subscriptionID string)
	}
	// Outcomes records what happened: *outcome.Writer.
	Outcomes interface {
		Write(ctx context.Context, r *outcome.Record)
	}
	// Subscriptions gives the current state of a subscription and lets the
	// path disable one that answered 410 Gone: *subscription.Store.
	Subscriptions interface {
		Get(id string) (*subscription.Subscription, bool)
		Update(ctx context.Context, id string, ifVersion int64, change func(*subscription.Subscription) error) (*subscription.Subscription, error)
	}
)

// Attempter makes one delivery attempt and decides what follows it:
// delivered, retried, parked, dead-lettered or dropped. Every first attempt
// and every retry runs through it.
type Attempter struct {
	Send     Sender
	Subs     Subscriptions
	Outcomes Outcomes
	Retrier  Retrier     // nil: failures are dead-ended with an outcome
	Dedupe   Deduper     // optional
	Limiter  RateLimiter // optional
	Breaker  Breaker     // optional
	// MaxAttempts applies to subscriptions that do not set their own.
	MaxAttempts int
	// RateLimitWait is how long an attempt may wait in place, holding one
	// of its endpoint's workers, for a rate-limit token before it is parked.
	// Parked deliveries come back together a tier later and find a bucket
	// of only a few tokens, so parking alone would deliver a backlog far
	// below the limit; waiting briefly lets the endpoint's workers take
	// every token. Zero means DefaultRateLimitWait; negative parks at once.
	RateLimitWait time.Duration
	// Observe, when set, sees every finished attempt (metrics, history, logs).
	Observe func(ctx context.Context, j *Job, r *outcome.Record)
	Log     *zap.Logger
	Now     func() time.Time
}

// leaseMargin is added to the request timeout so a lease outlives the
// request it guards.
const leaseMargin = 5 * time.Second

// DefaultRateLimitWait is Attempter.RateLimitWait's default. An endpoint
// limited to fewer than 2 requests a second parks at once: its next token
// is always further away.
const DefaultRateLimitWait = 500 * time.Millisecond

// Handle runs j and reports how it finished.
func (a *Attempter) Handle(ctx context.Context, j *Job) Result {
	f, res := a.Begin(ctx, j)
	if f == nil {
		return res
	}
	return f.Finish()
}

// Flight is an attempt whose request is on its way; Finish waits for the
// response and decides what follows.
type Flight struct {
	a   *Attempter
	ctx context.Context
	j   *Job
	sub *subscription.Subscription
	now time.Time
	p   *delivery.Pending
}

// Begin runs j up to and including writing its request. It returns the
// attempt in flight, or nil and the result when the attempt ended before a
// request (a duplicate, a parked or dropped job, an unbuildable request).
// The dispatcher waits for the response on a goroutine of its own (see
// delivery.Client.Start).
func (a *Attempter) Begin(ctx context.Context, j *Job) (*Flight, Result) {
	now := a.now()
	sub, ok := a.Subs.Get(j.Subscription.ID)
	if !ok {
		a.Unprepare(ctx, j)
		a.record(ctx, j, &outcome.Record{State: outcome.SubscriptionDeleted, AttemptedAt: now})
		return nil, Result{Step: Dropped}
	}
	j.Subscription = sub
	switch sub.Status {
	case subscription.StatusDisabled:
		a.Unprepare(ctx, j)
		a.record(ctx, j, &outcome.Record{State: outcome.Disabled, Error: "subscription is disabled", AttemptedAt: now})
		return nil, Result{Step: Dropped}
	case subscription.StatusPaused:
		a.Unprepare(ctx, j)
		return nil, a.park(ctx, j, 0, "subscription paused", now)
	}
	if a.Breaker != nil && !a.Breaker.Allow(sub.ID) {
		a.Unprepare(ctx, j)
		return nil, a.park(ctx, j, 0, "circuit open", now)
	}
	if a.Dedupe != nil {
		// A Redis failure returns Acquired with the error: deliver anyway.
		switch a.acquire(ctx, j, sub) {
		case dedupe.Done:
			a.record(ctx, j, &outcome.Record{State: outcome.Duplicate, AttemptedAt: now})
			return nil, Result{Step: Dropped}
		case dedupe.Busy:
			return nil, a.park(ctx, j, 0, "another attempt is in flight", now)
		}
	}
	// The request slot bounds requests open to the endpoint, not attempts:
	// the lease above and the done mark and outcome below overlap other
	// attempts' requests.
	if err := j.HoldSlot(ctx); err != nil {
		a.release(ctx, j)
		return nil, Result{Step: Abandoned, Err: err}
	}
	// The limiter comes last before the request: a duplicate must not
	// spend the endpoint's budget, and the closer the token is taken to the
	// send, the closer the rate the endpoint sees is to the limit.
	if a.Limiter != nil && sub.RateLimitPerSecond > 0 {
		if res, limited := a.waitForToken(ctx, j, sub, now); limited {
			j.ReleaseSlot()
			a.release(ctx, j)
			return nil, res
		}
	}
	if j.FirstAttemptAt.IsZero() {
		j.FirstAttemptAt = now
	}

	req, err := delivery.Build(j.Event, sub, j.DeliveryID, now)
	if err != nil {
		j.ReleaseSlot()
		a.release(ctx, j)
		rec := &outcome.Record{State: outcome.Failed, Error: err.Error(), AttemptedAt: now}
		a.record(ctx, j, rec)
		return nil, a.deadLetter(ctx, j, DeadLetter{Reason: "non_retryable", LastError: err.Error(), AttemptedAt: now})
	}
	return &Flight{a: a, ctx: ctx, j: j, sub: sub, now: now, p: a.Send.Start(ctx, req)}, Result{}
}

// Await blocks until the response begins to arrive (delivery.Pending.Await).
func (f *Flight) Await() { f.p.Await() }

// Finish waits for the response of f's request and decides what follows:
// delivered, retried, dead-lettered. Call it once.
func (f *Flight) Finish() Result {
	a, ctx, j, sub, now := f.a, f.ctx, f.j, f.sub, f.now
	res := f.p.Wait()
	j.ReleaseSlot()
	rec := &outcome.Record{
		HTTPStatus:  res.Status,
		LatencyMS:   float64(res.Latency.Microseconds()) / 1000,
		Response:    res.Excerpt(1024),
		AttemptedAt: now,
	}
	if res.Err != nil {
		rec.Error = res.Err.Error()
	}

	switch res.Class {
	case delivery.Delivered:
		if a.Dedupe != nil {
			_ = a.Dedupe.MarkDone(ctx, j.DeliveryID)
		}
		if a.Breaker != nil {
			a.Breaker.Success(sub.ID)
		}
		rec.State = outcome.Delivered
		a.record(ctx, j, rec)
		return Result{Step: Delivered}

	case delivery.Gone:
		a.release(ctx, j)
		rec.State = outcome.Disabled
		a.record(ctx, j, rec)
		a.disable(ctx, sub)
		return a.deadLetter(ctx, j, DeadLetter{Reason: "gone", LastStatus: res.Status, LastError: "endpoint answered 410 Gone; subscription disabled", AttemptedAt: now})

	case delivery.Refused:
		a.release(ctx, j)
		rec.State = outcome.Failed
		a.record(ctx, j, rec)
		return a.deadLetter(ctx, j, DeadLetter{Reason: "non_retryable", LastStatus: res.Status, LastError: rec.Error, AttemptedAt: now})
	}

	// Retryable.
	a.release(ctx, j)
	if a.Breaker != nil {
		a.Breaker.Failure(sub.ID)
	}
	if res.Aborted {
		rec.State = outcome.Aborted
		a.record(ctx, j, rec)
		return a.deadLetter(ctx, j, DeadLetter{Reason: "aborted", LastStatus: res.Status, LastError: "receiver asked to stop retrying (webhook-delivery: abort)", AttemptedAt: now})
	}
	if j.Attempt >= a.maxAttempts(sub) || a.Retrier == nil {
		rec.State = outcome.Failed
		a.record(ctx, j, rec)
		return a.deadLetter(ctx, j, DeadLetter{Reason: "attempts_exhausted", LastStatus: res.Status, LastError: rec.Error, AttemptedAt: now})
	}
	rec.State = outcome.Failed
	a.record(ctx, j, rec)
	if err := a.Retrier.Retry(ctx, j, Retry{After: res.RetryAfter, LastStatus: res.Status, LastError: rec.Error, AttemptedAt: now}); err != nil {
		a.log().Warn("handing the delivery to a retry tier failed; it stays unfinished",
			zap.String("delivery_id", j.DeliveryID), zap.Error(err))
		return Result{Step: Abandoned, Err: err}
	}
	return Result{Step: Retried}
}

// waitForToken takes a rate-limit token for sub, waiting for it up to
// RateLimitWait. When it gets none it parks j, or abandons it if j's
// partition is revoked or ctx ends meanwhile, and reports limited.
func (a *Attempter) waitForToken(ctx context.Context, j *Job, sub *subscription.Subscription, now time.Time) (Result, bool) {
	budget := a.RateLimitWait
	if budget == 0 {
		budget = DefaultRateLimitWait
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, after, _ := a.Limiter.Allow(ctx, sub.ID, sub.RateLimitPerSecond)
		if ok {
			return Result{}, false
		}
		if after <= 0 || after > budget {
			return a.park(ctx, j, after, "rate limited", now), true
		}
		budget -= after
		if timer == nil {
			timer = time.NewTimer(after)
		} else {
			timer.Reset(after)
		}
		select {
		case <-timer.C:
		case <-j.Abandon: // a nil channel never fires
			return Result{Step: Abandoned, Err: errRevoked}, true
		case <-ctx.Done():
			return Result{Step: Abandoned, Err: ctx.Err()}, true
		}
	}
}

func (a *Attempter) park(ctx context.Context, j *Job, after time.Duration, why string, now time.Time) Result {
	if a.Retrier == nil {
		// Nowhere to park: wait here instead, never drop.
		return Result{Step: Abandoned, Err: errors.New(why)}
	}
	if err := a.Retrier.Retry(ctx, j, Retry{Park: true, After: after, LastError: why, AttemptedAt: now}); err != nil {
		return Result{Step: Abandoned, Err: fmt.Errorf("park (%s): %w", why, err)}
	}
	a.record(ctx, j, &outcome.Record{State: outcome.Parked, Error: why, AttemptedAt: now})
	return Result{Step: Parked}
}

func (a *Attempter) deadLetter(ctx context.Context, j *Job, why DeadLetter) Result {
	if a.Retrier == nil {
		a.record(ctx, j, &outcome.Record{State: outcome.DeadLettered, Error: why.Reason + ": " + why.LastError, HTTPStatus: why.LastStatus, AttemptedAt: why.AttemptedAt})
		return Result{Step: DeadLettered}
	}
	if err := a.Retrier.DeadLetter(ctx, j, why); err != nil {
		a.log().Warn("dead-lettering failed; the delivery stays unfinished",
			zap.String("delivery_id", j.DeliveryID), zap.Error(err))
		return Result{Step: Abandoned, Err: err}
	}
	a.record(ctx, j, &outcome.Record{State: outcome.DeadLettered, Error: why.Reason + ": " + why.LastError, HTTPStatus: why.LastStatus, AttemptedAt: why.AttemptedAt})
	a.record(ctx, j, &outcome.Record{State: outcome.Alert, Error: "delivery dead-lettered: " + why.Reason, HTTPStatus: why.LastStatus, AttemptedAt: why.AttemptedAt})
	return Result{Step: DeadLettered}
}

func (a *Attempter) disable(ctx context.Context, sub *subscription.Subscription) {
	_, err := a.Subs.Update(ctx, sub.ID, 0, func(s *subscription.Subscription) error {
		s.Status = subscription.StatusDisabled
		return nil
	})
	if err != nil {
		a.log().Warn("could not disable subscription after 410 Gone", zap.String("subscription_id", sub.ID), zap.Error(err))
		return
	}
	a.log().Info("subscription disabled: endpoint answered 410 Gone", zap.String("subscription_id", sub.ID), zap.String("url", sub.URL))
}

// leaseAsker is a Deduper that can send a lease ahead of its attempt:
// *dedupe.Store.
type leaseAsker interface {
	Ask(ctx context.Context, deliveryID string, lease time.Duration) *dedupe.Lease
}

// leaseAhead is how long before its attempt begins a lease sent by Prepare
// may have been sent. One sent earlier is given back and taken again, so
// that it lasts the attempt as one taken when the attempt begins does.
const leaseAhead = time.Second

// Prepare sends j's lease ahead of its attempt when the Deduper can
// (dedupe.Store.Ask): Begin then finds the answer in, instead of waiting
// for a pipeline of its own. The dispatcher calls it for the jobs next in
// line of an endpoint (WithPreparer). A job of a paused or disabled
// subscription gets none: its attempt takes no lease.
func (a *Attempter) Prepare(ctx context.Context, j *Job) {
	if st := j.Subscription.Status; st == subscription.StatusPaused || st == subscription.StatusDisabled {
		return
	}
	if asker, ok := a.Dedupe.(leaseAsker); ok && j.lease == nil {
		j.lease = asker.Ask(ctx, j.DeliveryID, j.Subscription.Timeout()+leaseMargin)
	}
}

// Unprepare gives back the lease Prepare sent for j, for a job that ends
// without an attempt.
func (a *Attempter) Unprepare(ctx context.Context, j *Job) {
	l := j.lease
	if l == nil {
		return
	}
	j.lease = nil
	if st, _ := l.Wait(ctx); st == dedupe.Acquired {
		a.release(ctx, j)
	}
}

// acquire takes j's lease, or the answer to the one Prepare sent.
func (a *Attempter) acquire(ctx context.Context, j *Job, sub *subscription.Subscription) dedupe.State {
	lease := sub.Timeout() + leaseMargin
	if l := j.lease; l != nil {
		j.lease = nil
		st, _ := l.Wait(ctx)
		if st != dedupe.Acquired || a.now().Sub(l.Asked()) <= leaseAhead {
			return st
		}
		a.release(ctx, j)
	}
	st, _ := a.Dedupe.Acquire(ctx, j.DeliveryID, lease)
	return st
}

func (a *Attempter) release(ctx context.Context, j *Job) {
	if a.Dedupe != nil {
		_ = a.Dedupe.Release(ctx, j.DeliveryID)
	}
}

// record fills the identity of j into r and writes it.
func (a *Attempter) record(ctx context.Context, j *Job, r *outcome.Record) {
	ev := j.Event
	r.DeliveryID = j.DeliveryID
	r.EventID = ev.ID
	r.EventType = ev.Type
	r.SubscriptionID = j.Subscription.ID
	r.Topic = ev.Topic
	r.Partition = ev.Partition
	r.Offset = ev.Offset
	r.Attempt = j.Attempt
	r.Tier = j.Tier
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.TraceID = sc.TraceID().String()
	}
	if a.Outcomes != nil {
		a.Outcomes.Write(ctx, r)
	}
	if a.Observe != nil {
		a.Observe(ctx, j, r)
	}
}

func (a *Attempter) maxAttempts(sub *subscription.Subscription) int {
	if sub.MaxAttempts > 0 {
		return sub.MaxAttempts
	}
	if a.MaxAttempts > 0 {
		return a.MaxAttempts
	}
	return subscription.DefaultMaxAttempts
}

func (a *Attempter) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Attempter) log() *zap.Logger {
	if a.Log != nil {
		return a.Log
	}
	return zap.NewNop()
}
