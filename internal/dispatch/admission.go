package dispatch

import (
	"context"
	"runtime/metrics"
	"sync"
	"time"
)

// Admission, when the process runs out of CPU: a dispatcher that takes
// every job its sources offer, up to max_in_flight, holds thousands of
// requests open at once when one event fans out to many endpoints. Each
// is a goroutine, a connection and its buffers at both ends, and all of
// them wait for the same two CPUs: the extra requests add no throughput,
// only scheduling, stack growth and garbage collection (BENCHMARKS.md,
// fan-out). So while goroutines of the process wait for a CPU
// (busyLatency), the dispatcher takes new jobs only as fast as it ends
// them, under a limit on its recent ones that falls by a quarter a tick,
// to no less than busyFloor; once they stop waiting, the limit grows
// back to max_in_flight within a second or two.
//
// Only recent jobs count: a job submitted more than admitWindow ago no
// longer holds anything back. A slow endpoint's requests and the queue
// of a stalled one therefore delay the others by at most admitWindow,
// and only while the CPU is short; with CPU to spare nothing waits.
const (
	// admitTick is how often the limit is adjusted and jobs age.
	admitTick = 100 * time.Millisecond
	// admitWindow is how long a submitted job counts against the limit.
	admitWindow = 10 * admitTick
	// busyFloor is the lowest limit while the CPU is short: enough jobs
	// to keep a few endpoints' requests flowing (a default max_in_flight
	// of 16 and the jobs prepared ahead of them), few enough to keep
	// their goroutines and connections near a hundred.
	busyFloor = 128
	// busyLatency is how long the slowest tenth of the goroutines made
	// runnable wait for a CPU before the process counts as busy. The
	// wait grows with the jobs in flight once the CPU is all in use: in a
	// fan-out on two CPUs it is about 0.5 ms with 128 of them, 1 ms with
	// 256 and 2 ms with 512 (BENCHMARKS.md, item 40). The limit settles
	// where the wait crosses busyLatency, so busyLatency sets how many
	// jobs the process holds once more of them add nothing but overhead.
	busyLatency = 500 * time.Microsecond
)

// admission counts the jobs submitted within the last admitWindow that
// have not finished, and makes Submit wait while they reach the limit.
type admission struct {
	most, floor int64
	busy        func() bool // reports whether the CPU was short since the last call

	mu      sync.Mutex
	tick    int64   // ticks since the start
	recent  []int64 // unfinished jobs by the tick they were admitted in, tick % len
	count   int64   // sum of recent
	limit   int64
	waiting int           // Submit calls waiting for room
	room    chan struct{} // closed, and replaced, when room appears for them
}

// newAdmission returns an admission that starts at floor and may grow to
// most; busy is asked at every tick.
func newAdmission(most, floor int64, busy func() bool) *admission {
	floor = min(floor, most)
	return &admission{
		most: most, floor: floor, busy: busy,
		recent: make([]int64, admitWindow/admitTick),
		limit:  floor,
		room:   make(chan struct{}),
	}
}

// admit waits until fewer recent jobs than the limit are unfinished, then
// counts one more and returns the tick to give back to done. It returns
// ctx's error if ctx ends first.
func (a *admission) admit(ctx context.Context) (int64, error) {
	a.mu.Lock()
	for a.count >= a.limit {
		room := a.room
		a.waiting++
		a.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			a.mu.Lock()
			a.waiting--
			a.mu.Unlock()
			return 0, ctx.Err()
		}
		a.mu.Lock()
		a.waiting--
	}
	t := a.tick
	a.recent[t%int64(len(a.recent))]++
	a.count++
	a.mu.Unlock()
	return t, nil
}

// done ends a job admitted at tick t; one older than the window no longer
// counts.
func (a *admission) done(t int64) {
	a.mu.Lock()
	if a.tick-t < int64(len(a.recent)) {
		a.recent[t%int64(len(a.recent))]--
		a.count--
		a.wakeLocked(false)
	}
	a.mu.Unlock()
}

// advance ages the jobs by one tick and adjusts the limit: down by a
// quarter of what is running, to no less than the floor, when the CPU was
// short; up by a quarter, or the floor, to no more than most, when not.
func (a *admission) advance() {
	busy := a.busy()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tick++
	i := a.tick % int64(len(a.recent))
	a.count -= a.recent[i] // admitted a window ago: they count no longer
	a.recent[i] = 0
	if busy {
		a.limit = max(a.floor, min(a.limit, a.count)*3/4)
	} else {
		a.limit = min(a.most, a.limit+max(a.limit/4, a.floor))
	}
	a.wakeLocked(true)
}

// wakeLocked wakes the waiting Submit calls once the unfinished jobs are
// an eighth below the limit, or at a tick once they are below it: a
// source then submits a batch of jobs at a time instead of waking, and
// going back to wait, for every job that finishes.
func (a *admission) wakeLocked(tick bool) {
	room := a.limit - a.count
	if a.waiting > 0 && (room >= max(a.limit/8, 1) || tick && room > 0) {
		close(a.room)
		a.room = make(chan struct{})
	}
}

// current is the limit now.
func (a *admission) current() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limit
}

// run advances a every admitTick until stop is closed.
func (a *admission) run(stop <-chan struct{}) {
	t := time.NewTicker(admitTick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.advance()
		case <-stop:
			return
		}
	}
}

// schedLatency reports, each time it is called, whether the slowest tenth
// of the goroutines made runnable since the last call waited more than
// threshold for a CPU, from the runtime's own histogram. Too few samples
// say nothing: not busy.
func schedLatency(threshold time.Duration) func() bool {
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	var prev []uint64
	return func() bool {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
			return false
		}
		h := sample[0].Value.Float64Histogram()
		busy := prev != nil && slowTenth(h, prev) > threshold.Seconds()
		prev = append(prev[:0], h.Counts...)
		return busy
	}
}

// minSchedSamples is how many waits a tick must have seen to say anything.
const minSchedSamples = 50

// slowTenth is the lower bound of the bucket holding the 90th percentile
// of the waits counted in h since prev, or 0 with fewer than
// minSchedSamples of them.
func slowTenth(h *metrics.Float64Histogram, prev []uint64) float64 {
	var total uint64
	for i, c := range h.Counts {
		total += c - prev[i]
	}
	if total < minSchedSamples {
		return 0
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c - prev[i]
		if seen*10 >= total*9 {
			return max(h.Buckets[i], 0)
		}
	}
	return 0
}
