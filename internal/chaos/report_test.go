package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// result is one scenario's line in the summary.
type result struct {
	scenario     string
	tally        tally
	deadLettered int64
	took         time.Duration
	note         string
}

var (
	resultsMu sync.Mutex
	results   []result
)

// dupLimit is how many duplicates a scenario allows: permille of the
// expected deliveries, but never fewer than floor, what the fault can
// duplicate whatever the stream's length.
func dupLimit(expected int, permille float64, floor int) int {
	return max(int(permille*float64(expected)/1000), floor)
}

// report checks a scenario's tally against the targets — nothing lost,
// every signature valid, at most maxDups duplicates — logs it and adds it
// to the summary.
func report(t *testing.T, r result, maxDups int) {
	t.Helper()
	tl := r.tally
	t.Logf("%s: expected %d, acknowledged %d, lost %d, duplicates %d (%.3f%%, limit %d), requests %d (%d refused by the fault), dead-lettered %d, took %v; %s",
		r.scenario, tl.expected, tl.acked, len(tl.missing), tl.duplicates, percent(tl.duplicates, tl.expected), maxDups,
		tl.requests, tl.refused, r.deadLettered, r.took.Round(time.Millisecond), r.note)
	resultsMu.Lock()
	results = append(results, r)
	resultsMu.Unlock()

	if n := len(tl.missing); n > 0 {
		slices.Sort(tl.missing)
		t.Errorf("%s: %d of %d deliveries never acknowledged, e.g. %v", r.scenario, n, tl.expected, tl.missing[:min(n, 5)])
	}
	if tl.duplicates > maxDups {
		t.Errorf("%s: %d duplicates, over the limit of %d", r.scenario, tl.duplicates, maxDups)
	}
	if tl.unexpected > 0 {
		t.Errorf("%s: %d acknowledged webhook-ids match no produced event", r.scenario, tl.unexpected)
	}
	if tl.badSigs > 0 {
		t.Errorf("%s: %d requests with a signature that does not verify", r.scenario, tl.badSigs)
	}
}

func percent(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// printSummary writes the table of every scenario that reported.
func printSummary(w io.Writer) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(w, "\nherald fault suite, size %s\n", size())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\texpected\tacked\tlost\tduplicates\tdup %\trequests\trefused\tdead-lettered\ttook\t")
	for _, r := range results {
		tl := r.tally
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.3f\t%d\t%d\t%d\t%v\t\n",
			r.scenario, tl.expected, tl.acked, len(tl.missing), tl.duplicates, percent(tl.duplicates, tl.expected),
			tl.requests, tl.refused, r.deadLettered, r.took.Round(100*time.Millisecond))
	}
	tw.Flush()
	for _, r := range results {
		if r.note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.scenario, strings.TrimSpace(r.note))
		}
	}
}
