package retry

import (
	"strings"
	"testing"
	"time"
)

func defaultSchedule(t *testing.T) *Schedule {
	t.Helper()
	s, err := NewSchedule()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNext(t *testing.T) {
	s := defaultSchedule(t)
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, 10 * time.Second},
		{1, 10 * time.Second},
		{2, time.Minute},
		{3, 10 * time.Minute},
		{4, time.Hour},
		{5, 6 * time.Hour},
		{6, 6 * time.Hour},
		{9, 6 * time.Hour},
		{100, 6 * time.Hour},
	} {
		if got := s.Next(tc.attempt); got != tc.want {
			t.Errorf("Next(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestTierFor(t *testing.T) {
	s := defaultSchedule(t)
	for _, tc := range []struct {
		d, want time.Duration
	}{
		{-time.Second, 10 * time.Second}, // Retry-After in the past
		{0, 10 * time.Second},
		{2 * time.Second, 10 * time.Second},
		{10 * time.Second, 10 * time.Second},
		{10*time.Second + time.Millisecond, time.Minute},
		{time.Minute, time.Minute},
		{61 * time.Second, 10 * time.Minute},
		{2 * time.Hour, 6 * time.Hour},
		{6 * time.Hour, 6 * time.Hour},
		{7 * 24 * time.Hour, 6 * time.Hour}, // huge Retry-After: the longest tier
	} {
		if got := s.TierFor(tc.d); got != tc.want {
			t.Errorf("TierFor(%v) = %v, want %v", tc.d, got, tc.want)
		}
	}
}

func TestDue(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		tier time.Duration
		rnd  func() float64
		want time.Time
	}{
		{"no jitter source", 10 * time.Second, nil, now.Add(10 * time.Second)},
		{"zero", 10 * time.Second, func() float64 { return 0 }, now.Add(10 * time.Second)},
		{"half", 10 * time.Second, func() float64 { return 0.5 }, now.Add(10*time.Second + 500*time.Millisecond)},
		{"almost one", time.Minute, func() float64 { return 0.999999 }, now.Add(time.Minute + 5999994*time.Microsecond)},
		{"out of range is ignored", time.Minute, func() float64 { return 7 }, now.Add(time.Minute)},
		{"sub-second tier", 200 * time.Millisecond, func() float64 { return 0.5 }, now.Add(210 * time.Millisecond)},
	} {
		if got := Due(now, tc.tier, tc.rnd); !got.Equal(tc.want) {
			t.Errorf("%s: Due = %v, want %v", tc.name, got.Sub(now), tc.want.Sub(now))
		}
	}
	// Jitter never exceeds 10% of the tier.
	for i := 0; i < 1000; i++ {
		d := Due(now, time.Hour, nil).Sub(now)
		if d < time.Hour || d > time.Hour+6*time.Minute {
			t.Fatalf("due %v outside [tier, tier+10%%]", d)
		}
	}
}

func TestTopicName(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "herald.retry.10s"},
		{time.Minute, "herald.retry.1m"},
		{10 * time.Minute, "herald.retry.10m"},
		{time.Hour, "herald.retry.1h"},
		{6 * time.Hour, "herald.retry.6h"},
		{500 * time.Millisecond, "herald.retry.500ms"},
		{1500 * time.Millisecond, "herald.retry.1500ms"},
		{90 * time.Second, "herald.retry.90s"},
		{90 * time.Minute, "herald.retry.90m"},
		{48 * time.Hour, "herald.retry.48h"},
	} {
		got := TopicName("herald.", tc.d)
		if got != tc.want {
			t.Errorf("TopicName(%v) = %q, want %q", tc.d, got, tc.want)
		}
		back, err := ParseTopicName("herald.", got)
		if err != nil || back != tc.d {
			t.Errorf("ParseTopicName(%q) = %v, %v; want %v", got, back, err, tc.d)
		}
	}
	for _, bad := range []string{"herald.retry.", "herald.retry.x", "herald.retry.60s", "herald.retry.1m0s", "herald.dlq", "other.retry.1m", "herald.retry.-1s"} {
		if d, err := ParseTopicName("herald.", bad); err == nil {
			t.Errorf("ParseTopicName(%q) = %v, want an error", bad, d)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	s, err := ParseSchedule(" 10s, 1m,10m,1h,6h ")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Tiers(); len(got) != 5 || got[0] != 10*time.Second || got[4] != 6*time.Hour {
		t.Fatalf("tiers = %v", got)
	}
	s, err = ParseSchedule("200ms,500ms,1s")
	if err != nil {
		t.Fatal(err)
	}
	if s.First() != 200*time.Millisecond || s.Last() != time.Second || s.Next(7) != time.Second {
		t.Fatalf("sub-second schedule = %v", s.Tiers())
	}

	for _, tc := range []struct {
		in, err string
	}{
		{"", "empty"},
		{"10s,,1m", `"" is not a duration`},
		{"10s,soon", `"soon" is not a duration`},
		{"1m,10s", "increasing order: 10s comes after 1m0s"},
		{"10s,10s", "10s is listed twice"},
		{"0s,10s", "must be positive"},
		{"-1s", "must be positive"},
		{"1500us", "whole milliseconds"},
	} {
		_, err := ParseSchedule(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseSchedule(%q) error = %v, want it to say %q", tc.in, err, tc.err)
		}
	}
}
