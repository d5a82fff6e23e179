// Package ratelimit keeps herald from overwhelming an endpoint: a Redis
// rate limit per subscription, shared by every instance, and an in-process
// circuit breaker per subscription. Deliveries they hold back are parked in
// a retry tier without spending an attempt.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Limiter enforces each subscription's requests per second with GCRA in
// Redis, so all instances draw on one budget. Safe for concurrent use.
type Limiter struct {
	rl     *redis_rate.Limiter
	prefix string
	log    *zap.Logger
	errs   atomic.Uint64
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithPrefix sets the prefix of the per-subscription keys (after
// redis_rate's own "rate:"). Default "herald:rl:".
func WithPrefix(p string) Option { return func(l *Limiter) { l.prefix = p } }

// WithLogger sets the logger for Redis failures, logged at most once a
// minute. Default: no logging.
func WithLogger(log *zap.Logger) Option { return func(l *Limiter) { l.log = log } }

// NewLimiter returns a Limiter on rdb, which may be a single node or a Cluster.
func NewLimiter(rdb redis.UniversalClient, opts ...Option) *Limiter {
	l := &Limiter{rl: redis_rate.NewLimiter(rdb), prefix: "herald:rl:", log: zap.NewNop()}
	for _, o := range opts {
		o(l)
	}
	l.log = sampled(l.log, time.Now)
	return l
}

// Allow takes one request from subscriptionID's budget of perSecond
// requests a second, with a burst of max(1, perSecond/10): an idle endpoint
// gets the burst at once, then one request every 1/perSecond s. When the
// budget is spent it returns false and how long until the next request
// may go. perSecond <= 0 means unlimited.
//
// On a Redis failure it fails open: true, with the error, which is counted
// and logged at most once a minute.
func (l *Limiter) Allow(ctx context.Context, subscriptionID string, perSecond int) (ok bool, retryAfter time.Duration, err error) {
	if perSecond <= 0 {
		return true, 0, nil
	}
	res, err := l.rl.Allow(ctx, l.prefix+subscriptionID, redis_rate.Limit{
		Rate:   perSecond,
		Burst:  burst(perSecond),
		Period: time.Second,
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			n := l.errs.Add(1)
			l.log.Warn("ratelimit: redis unavailable, sending without a rate limit",
				zap.String("subscription_id", subscriptionID), zap.Error(err), zap.Uint64("redis_errors_total", n))
		}
		return true, 0, fmt.Errorf("ratelimit: %w", err)
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}

// Errors returns how many Redis calls failed since NewLimiter.
func (l *Limiter) Errors() uint64 { return l.errs.Load() }

func burst(perSecond int) int { return max(1, perSecond/10) }

// sampled lets through the first entry of each message per minute: an
// outage must not turn every delivery into a log line.
func sampled(l *zap.Logger, now func() time.Time) *zap.Logger {
	return l.WithOptions(
		zap.WithClock(clock(now)),
		zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Minute, 1, 0)
		}),
	)
}

type clock func() time.Time

func (c clock) Now() time.Time                       { return c() }
func (clock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }
