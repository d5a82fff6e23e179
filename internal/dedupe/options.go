package dedupe

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the prefix of every key. Default "herald:d:".
func WithPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// WithDoneTTL sets how long a done mark is kept. It must cover the retry
// horizon, or a late retry or replay is delivered twice. Default 7 days.
func WithDoneTTL(d time.Duration) Option { return func(s *Store) { s.doneTTL = d } }

// WithLogger sets the logger for Redis failures, which are logged at most
// once a minute. Default: no logging.
func WithLogger(l *zap.Logger) Option { return func(s *Store) { s.log = l } }

// WithClock sets the time source of log sampling. Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

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
