package chaos

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// Sizes: `make test` runs the small one, `make chaos` the full one
// (HERALD_CHAOS_SIZE=full), which has the numbers.
var (
	sizeFlag   = flag.String("chaos.size", "", "small or full (default: $HERALD_CHAOS_SIZE, else small)")
	eventsFlag = flag.Int("chaos.events", 0, "events per scenario (overrides the size's)")
)

// scale is how big one run of the suite is.
type scale struct {
	name string
	// events is produced per scenario; subscriber faults use a quarter,
	// since every failed attempt is a retry record.
	events int
	// produceOver spreads the events over this long, so the faults hit a
	// stream rather than a backlog.
	produceOver time.Duration
	// redisDown and kafkaDown are how long each service stays stopped.
	redisDown time.Duration
	kafkaDown time.Duration
	// faulty is how long a subscriber misbehaves.
	faulty time.Duration
	// settle bounds the wait for everything to be delivered after a fault.
	settle time.Duration
}

var (
	small = scale{
		name: "small", events: 2000, produceOver: 6 * time.Second,
		redisDown: 5 * time.Second, kafkaDown: 5 * time.Second, faulty: 6 * time.Second,
		settle: 2 * time.Minute,
	}
	full = scale{
		name: "full", events: 20000, produceOver: 40 * time.Second,
		redisDown: 30 * time.Second, kafkaDown: 20 * time.Second, faulty: 30 * time.Second,
		settle: 8 * time.Minute,
	}
)

func size() scale {
	name := *sizeFlag
	if name == "" {
		name = os.Getenv("HERALD_CHAOS_SIZE")
	}
	s := small
	switch name {
	case "", "small":
	case "full":
		s = full
	default:
		fmt.Fprintf(os.Stderr, "chaos: unknown size %q; using small\n", name)
	}
	if *eventsFlag > 0 {
		s.events = *eventsFlag
	}
	return s
}

func (s scale) String() string {
	return fmt.Sprintf("%s (%d events, Redis down %v, Kafka down %v, subscriber faults %v)",
		s.name, s.events, s.redisDown, s.kafkaDown, s.faulty)
}
