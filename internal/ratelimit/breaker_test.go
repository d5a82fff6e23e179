package ratelimit

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestBreakerStateMachine(t *testing.T) {
	// Steps: "F" failure, "S" success, "A+"/"A-" Allow wants true/false,
	// "wait <d>" advances the clock, "=<state>" checks State.
	for _, tc := range []struct {
		name    string
		steps   []string
		changes []string
	}{
		{"closed allows", []string{"A+", "=closed"}, nil},
		{"opens after threshold consecutive failures",
			[]string{"F", "F", "A+", "=closed", "F", "=open", "A-"},
			[]string{"closed>open"}},
		{"success resets the count", []string{"F", "F", "S", "F", "F", "=closed", "F", "=open"},
			[]string{"closed>open"}},
		{"open until the cooldown, then one probe",
			[]string{"F", "F", "F", "wait 9s", "A-", "=open", "wait 1s", "=half_open", "A+", "A-", "A-"},
			[]string{"closed>open", "open>half_open"}},
		{"probe success closes",
			[]string{"F", "F", "F", "wait 10s", "A+", "S", "=closed", "A+", "A+"},
			[]string{"closed>open", "open>half_open", "half_open>closed"}},
		{"probe failure reopens for a full cooldown",
			[]string{"F", "F", "F", "wait 10s", "A+", "F", "=open", "wait 9s", "A-", "wait 1s", "A+"},
			[]string{"closed>open", "open>half_open", "half_open>open", "open>half_open"}},
		{"a closed circuit after a probe counts failures afresh",
			[]string{"F", "F", "F", "wait 10s", "A+", "S", "F", "F", "=closed", "F", "=open"},
			[]string{"closed>open", "open>half_open", "half_open>closed", "closed>open"}},
		{"an unreported probe is replaced after a cooldown",
			[]string{"F", "F", "F", "wait 10s", "A+", "wait 9s", "A-", "wait 1s", "A+", "A-"},
			[]string{"closed>open", "open>half_open"}},
		{"success of a request sent before opening changes nothing",
			[]string{"F", "F", "F", "S", "=open", "A-"},
			[]string{"closed>open"}},
		{"failures while open do not extend the cooldown",
			[]string{"F", "F", "F", "wait 5s", "F", "wait 5s", "=half_open"},
			[]string{"closed>open", "open>half_open"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{now: time.Unix(1e9, 0)}
			b := NewBreaker(WithThreshold(3), WithCooldown(10*time.Second), WithClock(clk.Now))
			var changes []string
			b.OnChange(func(id string, from, to State) {
				if id != "sub_a" {
					t.Errorf("change for %q", id)
				}
				changes = append(changes, from.String()+">"+to.String())
			})
			for i, step := range tc.steps {
				switch {
				case step == "F":
					b.Failure("sub_a")
				case step == "S":
					b.Success("sub_a")
				case step == "A+" || step == "A-":
					if got := b.Allow("sub_a"); got != (step == "A+") {
						t.Fatalf("step %d: Allow = %v", i, got)
					}
				case step[0] == '=':
					if got := b.State("sub_a").String(); got != step[1:] {
						t.Fatalf("step %d: State = %s, want %s", i, got, step[1:])
					}
				default:
					d, err := time.ParseDuration(strings.TrimPrefix(step, "wait "))
					if err != nil {
						t.Fatalf("bad step %q", step)
					}
					clk.Advance(d)
				}
			}
			if !slices.Equal(changes, tc.changes) {
				t.Fatalf("changes %v, want %v", changes, tc.changes)
			}
			if b.State("sub_other") != Closed || !b.Allow("sub_other") {
				t.Fatal("another subscription's circuit was affected")
			}
		})
	}
}

func TestBreakerDefaults(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	b := NewBreaker(WithClock(clk.Now))
	for range 4 {
		b.Failure("s")
	}
	if b.State("s") != Closed {
		t.Fatal("opened before 5 failures")
	}
	b.Failure("s")
	clk.Advance(29 * time.Second)
	if b.State("s") != Open {
		t.Fatal("not open for 30s")
	}
	clk.Advance(time.Second)
	if b.State("s") != HalfOpen {
		t.Fatal("not half-open after 30s")
	}
	if State(7).String() != "state(7)" {
		t.Fatal(State(7).String())
	}
}

// Many deliveries to one half-open endpoint race for the probe: exactly one
// may win.
func TestBreakerOneProbeUnderConcurrency(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	b := NewBreaker(WithThreshold(1), WithCooldown(time.Second), WithClock(clk.Now))
	b.Failure("s")
	clk.Advance(time.Second)

	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if b.Allow("s") {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 1 {
		t.Fatalf("%d probes let through, want 1", allowed.Load())
	}
}

func TestBreakerConcurrentUse(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	b := NewBreaker(WithThreshold(2), WithCooldown(time.Millisecond), WithClock(clk.Now))
	var changes atomic.Int64
	b.OnChange(func(string, State, State) { changes.Add(1) })

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				id := fmt.Sprintf("sub_%d", i%4)
				if b.Allow(id) {
					if (i+g)%3 == 0 {
						b.Success(id)
					} else {
						b.Failure(id)
					}
				}
				_ = b.State(id)
				if i%50 == 0 {
					clk.Advance(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if changes.Load() == 0 {
		t.Fatal("no state changes under load")
	}
}
