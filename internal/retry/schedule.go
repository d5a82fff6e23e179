// Package retry keeps deliveries that did not succeed in Kafka itself: one
// topic per delay tier (herald.retry.10s, .1m, …), a producer that hands a
// job to the tier for its next attempt or to herald.dlq, and a tier consumer
// that pauses a partition until its head record is due. The schedule is pure.
package retry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTiers are the delays between attempts: attempt n is followed by
// tier n, and the last tier repeats until the attempts run out.
var DefaultTiers = []time.Duration{
	10 * time.Second,
	time.Minute,
	10 * time.Minute,
	time.Hour,
	6 * time.Hour,
}

// Schedule maps failed attempts to tiers. It is immutable and safe for
// concurrent use.
type Schedule struct {
	tiers []time.Duration
}

// NewSchedule checks tiers (strictly increasing, positive, whole
// milliseconds so a topic name can hold them) and returns their schedule.
// No tiers means DefaultTiers.
func NewSchedule(tiers ...time.Duration) (*Schedule, error) {
	if len(tiers) == 0 {
		tiers = DefaultTiers
	}
	for i, d := range tiers {
		switch {
		case d <= 0:
			return nil, fmt.Errorf("retry tier %d is %v: tiers must be positive", i+1, d)
		case d%time.Millisecond != 0:
			return nil, fmt.Errorf("retry tier %d is %v: tiers must be whole milliseconds", i+1, d)
		case i > 0 && d == tiers[i-1]:
			return nil, fmt.Errorf("retry tier %v is listed twice", d)
		case i > 0 && d < tiers[i-1]:
			return nil, fmt.Errorf("retry tiers must be in increasing order: %v comes after %v", d, tiers[i-1])
		}
	}
	return &Schedule{tiers: append([]time.Duration(nil), tiers...)}, nil
}

// ParseSchedule parses a comma-separated tier list such as
// "10s,1m,10m,1h,6h" (the HERALD_RETRY_TIERS form).
func ParseSchedule(list string) (*Schedule, error) {
	tiers, err := ParseTiers(list)
	if err != nil {
		return nil, err
	}
	return NewSchedule(tiers...)
}

// ParseTiers parses a comma-separated list of durations without checking
// their order; NewSchedule does.
func ParseTiers(list string) ([]time.Duration, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("retry tiers: empty list")
	}
	parts := strings.Split(list, ",")
	tiers := make([]time.Duration, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("retry tiers: %q is not a duration (use forms like 500ms, 10s, 1m, 6h)", p)
		}
		tiers = append(tiers, d)
	}
	return tiers, nil
}

// Tiers returns a copy of the tiers, shortest first.
func (s *Schedule) Tiers() []time.Duration {
	return append([]time.Duration(nil), s.tiers...)
}

// First is the shortest tier: where parked, replayed and backfilled
// deliveries go.
func (s *Schedule) First() time.Duration { return s.tiers[0] }

// Last is the longest tier.
func (s *Schedule) Last() time.Duration { return s.tiers[len(s.tiers)-1] }

// Next is the delay after failed attempt n (1-based): tier n, or the last
// tier once n runs past the list.
func (s *Schedule) Next(attempt int) time.Duration {
	switch {
	case attempt < 1:
		return s.tiers[0]
	case attempt > len(s.tiers):
		return s.Last()
	}
	return s.tiers[attempt-1]
}

// TierFor is the smallest tier not shorter than d, or the last tier when d
// exceeds them all: a Retry-After of 2s lands in the first tier ≥ 2s, a
// Retry-After of a week in the longest one.
func (s *Schedule) TierFor(d time.Duration) time.Duration {
	for _, t := range s.tiers {
		if t >= d {
			return t
		}
	}
	return s.Last()
}

// Has reports whether d is one of the tiers.
func (s *Schedule) Has(d time.Duration) bool {
	for _, t := range s.tiers {
		if t == d {
			return true
		}
	}
	return false
}

// Due is when a record handed to tier at now becomes deliverable: now +
// tier + jitter, the jitter uniform in [0, 10% of tier] so that a burst of
// failures does not come back as a burst. rnd returns values in [0, 1), like
// math/rand/v2.Float64; nil means no jitter.
func Due(now time.Time, tier time.Duration, rnd func() float64) time.Time {
	due := now.Add(tier)
	if rnd == nil {
		return due
	}
	f := rnd()
	if f < 0 || f >= 1 {
		f = 0
	}
	return due.Add(time.Duration(f * float64(tier/10)))
}

// FormatTier is the canonical short form of a tier as it appears in topic
// names: the largest unit that divides it, "10s", "1m", "6h", "500ms",
// "90s".
func FormatTier(d time.Duration) string {
	units := []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}}
	for _, u := range units {
		if d >= u.d && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// TopicName is the tier's topic: prefix + "retry." + FormatTier(d), e.g.
// "herald.retry.10s".
func TopicName(prefix string, d time.Duration) string {
	return prefix + "retry." + FormatTier(d)
}

// ParseTopicName is the inverse of TopicName.
func ParseTopicName(prefix, topic string) (time.Duration, error) {
	name, ok := strings.CutPrefix(topic, prefix+"retry.")
	if !ok {
		return 0, fmt.Errorf("%q is not a retry tier topic (want %sretry.<delay>)", topic, prefix)
	}
	d, err := time.ParseDuration(name)
	if err != nil || d <= 0 || FormatTier(d) != name {
		return 0, fmt.Errorf("%q is not a retry tier topic: %q is not a canonical delay", topic, name)
	}
	return d, nil
}

// DLQTopic is the dead-letter topic: prefix + "dlq".
func DLQTopic(prefix string) string { return prefix + "dlq" }
