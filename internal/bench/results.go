package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Results is what bench/results.json holds. Every figure that compares with
// a baseline of the same run is in a field whose name ends in "ratio".
type Results struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Short      bool      `json:"short"`
	Machine    Machine   `json:"machine"`

	Limit      *Limit      `json:"limit,omitempty"`
	Throughput *Throughput `json:"throughput,omitempty"`
	Latency    *Latency    `json:"latency,omitempty"`
	Fanout     *Fanout     `json:"fanout,omitempty"`
	Matching   *Matching   `json:"matching,omitempty"`
	Retry      *Retry      `json:"retry,omitempty"`
	Memory     *Memory     `json:"memory,omitempty"`

	// Targets are issue 6's targets, judged on full runs only.
	Targets []Target `json:"targets,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	Host       string `json:"host"`
	OS         string `json:"os"`
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model,omitempty"`
	MemTotalMB int    `json:"mem_total_mb,omitempty"`
	GoVersion  string `json:"go_version"`
	Kafka      string `json:"kafka"`
	Redis      string `json:"redis"`
}

// Limit is scenario 1: the receiver driven by a plain net/http client.
type Limit struct {
	Concurrency      int     `json:"concurrency"`
	Requests         int     `json:"requests"`
	Seconds          float64 `json:"seconds"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
}

// Throughput is scenario 2.
type Throughput struct {
	Events      int `json:"events"`
	EventBytes  int `json:"event_bytes"`
	Partitions  int `json:"partitions"`
	MaxInFlight int `json:"max_in_flight"`
	// Delivered counts "delivered" outcomes; Requests what the receiver saw.
	Delivered int64            `json:"delivered"`
	Requests  int64            `json:"requests"`
	Outcomes  map[string]int64 `json:"outcomes"`
	// TierRecords counts records herald handed to its retry tiers: parked
	// deliveries of a saturated endpoint, which the outcomes do not show.
	TierRecords int64 `json:"tier_records"`
	// Errors samples the errors of attempts that did not deliver.
	Errors           map[string]int64 `json:"outcome_errors,omitempty"`
	StartupSeconds   float64          `json:"startup_seconds"` // app.Run to first request
	Seconds          float64          `json:"seconds"`         // first request to last ack
	DeliveriesPerSec float64          `json:"deliveries_per_sec"`
	LimitPerSec      float64          `json:"limit_deliveries_per_sec"`
	ThroughputRatio  float64          `json:"throughput_ratio"`
	// LimitAfterPerSec is the limit measured again right after herald
	// stopped. The ratio stays scenario 1's; this says whether the
	// machine was as fast after the scenario as before it.
	LimitAfterPerSec float64  `json:"limit_after_deliveries_per_sec,omitempty"`
	Profiles         []string `json:"profiles,omitempty"`
}

// Latency is scenario 3, next to a plain Kafka consumer posting to the
// same receiver at the same rate (the pipeline without herald).
type Latency struct {
	RatePerSec int            `json:"rate_per_sec"`
	Seconds    float64        `json:"seconds"`
	Herald     LatencyFigures `json:"herald"`
	// ToAttempt is produce → the start of herald's attempt (Kafka, the
	// consumer, the dispatcher's queue); Request is the attempt's own
	// latency_ms (the request, as herald's outcome records it).
	ToAttempt LatencyFigures  `json:"to_attempt"`
	Request   LatencyFigures  `json:"request"`
	Baseline  *LatencyFigures `json:"baseline,omitempty"`
	P50Ratio  float64         `json:"p50_ratio,omitempty"`
	P99Ratio  float64         `json:"p99_ratio,omitempty"`
	P999Ratio float64         `json:"p999_ratio,omitempty"`
	// Errors samples the errors of herald's attempts that did not deliver.
	Errors map[string]int64 `json:"outcome_errors,omitempty"`
}

// LatencyFigures are percentiles of one latency histogram, in ms.
type LatencyFigures struct {
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
	P50MS    float64 `json:"p50_ms"`
	P90MS    float64 `json:"p90_ms"`
	P99MS    float64 `json:"p99_ms"`
	P999MS   float64 `json:"p999_ms"`
	MaxMS    float64 `json:"max_ms"`
	MeanMS   float64 `json:"mean_ms"`
}

// Fanout is scenario 4.
type Fanout struct {
	Subscriptions    int              `json:"subscriptions"`
	Events           int              `json:"events"`
	Deliveries       int64            `json:"deliveries"`
	Delivered        int64            `json:"delivered"`
	Outcomes         map[string]int64 `json:"outcomes"`
	TierRecords      int64            `json:"tier_records"`
	Errors           map[string]int64 `json:"outcome_errors,omitempty"`
	Seconds          float64          `json:"seconds"`
	DeliveriesPerSec float64          `json:"deliveries_per_sec"`
	LimitPerSec      float64          `json:"limit_deliveries_per_sec"`
	ThroughputRatio  float64          `json:"throughput_ratio"`
	Profiles         []string         `json:"profiles,omitempty"`
}

// Matching is scenario 5.
type Matching struct {
	Subscriptions int         `json:"subscriptions"`
	Cases         []MatchCase `json:"cases"`
	// SizeRatio is one match among Subscriptions over one match among
	// 1,000: near 1 when cost does not grow with subscriptions.
	SizeRatio float64 `json:"size_ratio"`
	// MatchesRatio is 100 matches over 1 match: at most ~100 when cost is
	// proportional to matches.
	MatchesRatio float64 `json:"matches_ratio"`
}

// MatchCase is one testing.Benchmark result.
type MatchCase struct {
	Name          string  `json:"name"`
	Subscriptions int     `json:"subscriptions"`
	Matches       int     `json:"matches"`
	NsPerOp       float64 `json:"ns_per_op"`
	AllocsPerOp   int64   `json:"allocs_per_op"`
	BytesPerOp    int64   `json:"bytes_per_op"`
}

// Retry is scenario 6. Late is actual − due, where due is the retry
// record's herald-due-at (jitter included) and actual the second attempt's
// arrival at the receiver.
type Retry struct {
	Deliveries int     `json:"deliveries"`
	TierMS     float64 `json:"tier_ms"`
	Retried    int     `json:"retried"` // second attempts timed
	Parked     int     `json:"parked"`  // tier records that spent no attempt
	Early      int     `json:"early"`
	Extra      int     `json:"extra_attempts"`
	LateMinMS  float64 `json:"late_min_ms"`
	LateP50MS  float64 `json:"late_p50_ms"`
	LateP99MS  float64 `json:"late_p99_ms"`
	LateP999MS float64 `json:"late_p999_ms"`
	LateMaxMS  float64 `json:"late_max_ms"`
	// SinceFailureP99MS is the p99 of second attempt − first attempt, the
	// delay a subscriber sees: tier + jitter + lateness.
	SinceFailureP99MS float64 `json:"since_failure_p99_ms"`
	LateP99TierRatio  float64 `json:"late_p99_tier_ratio"`
	// Outcomes and Errors are what herald's attempts came to.
	Outcomes map[string]int64 `json:"outcomes,omitempty"`
	Errors   map[string]int64 `json:"outcome_errors,omitempty"`
}

// Memory is scenario 7: a separate herald process.
type Memory struct {
	Herald string `json:"herald"`
	// IdleRSSMB is the baseline: herald ready, subscriptions loaded, no
	// traffic.
	IdleRSSMB float64 `json:"idle_rss_mb"`

	ThroughputEvents       int     `json:"throughput_events"`
	ThroughputPeakRSSMB    float64 `json:"throughput_peak_rss_mb"`
	ThroughputPerSec       float64 `json:"throughput_deliveries_per_sec"`
	ThroughputPeakRSSRatio float64 `json:"throughput_peak_rss_ratio"`

	InFlightTarget       int     `json:"in_flight_target"`
	InFlightReached      int64   `json:"in_flight_reached"`
	InFlightPeakRSSMB    float64 `json:"in_flight_peak_rss_mb"`
	InFlightPeakRSSRatio float64 `json:"in_flight_peak_rss_ratio"`

	// Profiles are heap and goroutine profiles of half the in-flight load
	// through herald in the benchmark's own process, receiver included, with
	// that process's heap, stacks and goroutines at the plateau.
	Profiles            []string `json:"profiles,omitempty"`
	ProfileInFlight     int      `json:"profile_in_flight,omitempty"`
	ProfileHeapInuseMB  float64  `json:"profile_heap_inuse_mb,omitempty"`
	ProfileStackInuseMB float64  `json:"profile_stack_inuse_mb,omitempty"`
	ProfileGoroutines   int      `json:"profile_goroutines,omitempty"`
}

// Target is one of issue 6's targets and whether this run met it.
type Target struct {
	Scenario string  `json:"scenario"`
	Figure   string  `json:"figure"`
	Want     string  `json:"want"`
	Value    float64 `json:"value"`
	Met      bool    `json:"met"`
}

// JSON renders res indented.
func (res *Results) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// judge fills Targets from the figures present.
func (res *Results) judge(full bool) {
	if !full {
		return
	}
	add := func(scenario, figure, want string, v float64, met bool) {
		res.Targets = append(res.Targets, Target{scenario, figure, want, round(v, 3), met})
	}
	if t := res.Throughput; t != nil {
		add("2 throughput", "throughput_ratio", ">= 0.6", t.ThroughputRatio, t.ThroughputRatio >= 0.6)
	}
	if l := res.Latency; l != nil {
		add("3 latency", "p99_ms", "<= 20", l.Herald.P99MS, l.Herald.Received > 0 && l.Herald.P99MS <= 20)
	}
	if f := res.Fanout; f != nil {
		add("4 fan-out", "throughput_ratio", ">= 0.5", f.ThroughputRatio, f.ThroughputRatio >= 0.5)
	}
	if m := res.Matching; m != nil {
		for _, c := range m.Cases {
			if c.Name == "no-match" && c.Subscriptions == m.Subscriptions {
				add("5 matching", "no-match ns/op", "<= 1000", c.NsPerOp, c.NsPerOp <= 1000)
			}
		}
		// 100× the subscriptions would cost 100× if matching scanned them;
		// an order of magnitude under that leaves room for cache misses
		// of the larger maps.
		add("5 matching", "size_ratio", "<= 10 (100× the subscriptions)", m.SizeRatio, m.SizeRatio > 0 && m.SizeRatio <= 10)
		add("5 matching", "matches_ratio", "<= 150 (cost proportional to matches)", m.MatchesRatio, m.MatchesRatio > 0 && m.MatchesRatio <= 150)
	}
	if r := res.Retry; r != nil {
		// due-at already holds the jitter, so "1 s + jitter" past the
		// nominal due time is 1 s past due-at.
		add("6 retry", "late_p99_ms", "<= 1000 past due-at (jitter included)", r.LateP99MS, r.Retried > 0 && r.LateP99MS <= 1000)
		add("6 retry", "early", "== 0", float64(r.Early), r.Retried > 0 && r.Early == 0)
	}
	if m := res.Memory; m != nil && m.InFlightPeakRSSMB > 0 {
		add("7 memory", "in_flight_peak_rss_mb", "<= 150", m.InFlightPeakRSSMB, m.InFlightPeakRSSMB <= 150 && m.InFlightReached >= int64(m.InFlightTarget))
	}
}

// WriteTable prints the results as aligned text.
func (res *Results) WriteTable(out io.Writer) {
	m := res.Machine
	fmt.Fprintf(out, "herald bench  %s  %d CPUs (%s), %d MB, %s\n", m.OS, m.CPUs, m.CPUModel, m.MemTotalMB, m.GoVersion)
	fmt.Fprintf(out, "  %s; %s\n", m.Kafka, m.Redis)
	if res.Short {
		fmt.Fprintln(out, "  short run: tiny sizes, targets not judged")
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(cols ...string) {
		for _, c := range cols {
			fmt.Fprint(tw, c, "\t")
		}
		fmt.Fprintln(tw)
	}
	row("scenario", "figure", "value", "baseline", "ratio")
	if l := res.Limit; l != nil {
		row("1 limit", fmt.Sprintf("deliveries/s (c=%d)", l.Concurrency), f0(l.DeliveriesPerSec), "", "")
	}
	if t := res.Throughput; t != nil {
		row("2 throughput", fmt.Sprintf("deliveries/s (%d events)", t.Events), f0(t.DeliveriesPerSec), f0(t.LimitPerSec), f2(t.ThroughputRatio))
		row("", "cold start to first delivery s", f2(t.StartupSeconds), "", "")
		if t.LimitAfterPerSec > 0 {
			row("", "limit measured right after, deliveries/s", f0(t.LimitAfterPerSec), "", "")
		}
	}
	if l := res.Latency; l != nil {
		var b LatencyFigures
		if l.Baseline != nil {
			b = *l.Baseline
		}
		row("3 latency", fmt.Sprintf("p50 ms (%d/s)", l.RatePerSec), f2(l.Herald.P50MS), f2(b.P50MS), f2(l.P50Ratio))
		row("", "p99 ms", f2(l.Herald.P99MS), f2(b.P99MS), f2(l.P99Ratio))
		row("", "p999 ms", f2(l.Herald.P999MS), f2(b.P999MS), f2(l.P999Ratio))
		row("", "max ms", f2(l.Herald.MaxMS), f2(b.MaxMS), "")
		row("", "produce→attempt p50/p99 ms", f2(l.ToAttempt.P50MS)+" / "+f2(l.ToAttempt.P99MS), "", "")
		row("", "request p50/p99 ms", f2(l.Request.P50MS)+" / "+f2(l.Request.P99MS), "", "")
	}
	if f := res.Fanout; f != nil {
		row("4 fan-out", fmt.Sprintf("deliveries/s (%d subs)", f.Subscriptions), f0(f.DeliveriesPerSec), f0(f.LimitPerSec), f2(f.ThroughputRatio))
	}
	if m := res.Matching; m != nil {
		for _, c := range m.Cases {
			row("5 matching", fmt.Sprintf("%s ns/op (%d subs, %d allocs)", c.Name, c.Subscriptions, c.AllocsPerOp), f0(c.NsPerOp), "", "")
		}
		row("", "one match: 100k subs vs 1k", "", "", f2(m.SizeRatio))
		row("", "100 matches vs 1", "", "", f2(m.MatchesRatio))
	}
	if r := res.Retry; r != nil {
		row("6 retry", fmt.Sprintf("late p50 ms (%d via %.0fms tier)", r.Retried, r.TierMS), f2(r.LateP50MS), "", "")
		row("", "late p99 ms", f2(r.LateP99MS), f0(r.TierMS), f3(r.LateP99TierRatio))
		row("", "late max ms", f2(r.LateMaxMS), "", "")
		row("", "early", fmt.Sprint(r.Early), "", "")
	}
	if m := res.Memory; m != nil {
		row("7 memory", "idle RSS MB", f1(m.IdleRSSMB), "", "")
		row("", fmt.Sprintf("peak RSS MB, %d in flight", m.InFlightReached), f1(m.InFlightPeakRSSMB), f1(m.IdleRSSMB), f2(m.InFlightPeakRSSRatio))
		if m.ThroughputPeakRSSMB > 0 {
			row("", fmt.Sprintf("peak RSS MB, throughput (%d events)", m.ThroughputEvents), f1(m.ThroughputPeakRSSMB), f1(m.IdleRSSMB), f2(m.ThroughputPeakRSSRatio))
			row("", "deliveries/s of that process", f0(m.ThroughputPerSec), "", "")
		}
	}
	_ = tw.Flush()
	if len(res.Targets) > 0 {
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "target\tfigure\twant\tvalue\tmet\t")
		for _, t := range res.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%s\t\n", t.Scenario, t.Figure, t.Want, t.Value, met)
		}
		_ = tw.Flush()
	}
	for _, e := range res.Errors {
		fmt.Fprintln(out, "error:", e)
	}
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
func f3(v float64) string { return fmt.Sprintf("%.3f", v) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, 3)
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func mb(kb int64) float64 { return round(float64(kb)/1024, 1) }
