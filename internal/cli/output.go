package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/subscription"
)

// Output formats of commands that print records.
const (
	outputTable = "table"
	outputJSON  = "json"
)

func checkOutput(format string) error {
	switch format {
	case outputTable, outputJSON:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table or json", format)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printSubscriptionTable prints one row per subscription.
func printSubscriptionTable(w io.Writer, subs []*subscription.Subscription) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tURL\tTOPICS\tEVENT TYPES\tTENANT")
	for _, s := range subs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			s.ID, s.Status, s.URL, joinOrAll(s.Topics), joinOrAll(s.EventTypes), orDash(s.Tenant))
	}
	return tw.Flush()
}

// printSubscriptionDetail prints one subscription as "field: value" lines.
func printSubscriptionDetail(w io.Writer, s *subscription.Subscription) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", s.ID)
	row("URL", s.URL)
	row("Status", string(s.Status))
	row("Description", orDash(s.Description))
	row("Tenant", orDash(s.Tenant))
	row("Topics", joinOrAll(s.Topics))
	row("Event types", joinOrAll(s.EventTypes))
	row("Payload", string(s.Payload))
	if s.ThinURLTemplate != "" {
		row("Thin URL template", s.ThinURLTemplate)
	}
	row("Signature scheme", string(s.SignatureScheme))
	row("Headers", headerList(s.Headers))
	rate := "unlimited"
	if s.RateLimitPerSecond > 0 {
		rate = strconv.Itoa(s.RateLimitPerSecond) + "/s"
	}
	row("Rate limit", rate)
	row("Max in flight", orDefault(s.MaxInFlight))
	row("Timeout", s.Timeout().String())
	row("Max attempts", orDefault(s.MaxAttempts))
	row("Version", strconv.FormatInt(s.Version, 10))
	row("Created", s.CreatedAt.Format(time.RFC3339))
	row("Updated", s.UpdatedAt.Format(time.RFC3339))
	return tw.Flush()
}

// joinOrAll shows a topic or event-type list; empty means every one.
func joinOrAll(v []string) string {
	if len(v) == 0 {
		return "(all)"
	}
	return strings.Join(v, ",")
}

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

func orDefault(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

func headerList(h map[string]string) string {
	if len(h) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(h))
	for k, v := range h {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// printHealthTable prints one row per subscription with its health.
func printHealthTable(w io.Writer, ds []*apiclient.Detail) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tURL\tSUCCESS\tLAST ERROR\tCIRCUIT\tDLQ")
	for _, d := range ds {
		rate, lastErr, circuit, dlq := "-", "-", "-", "-"
		if h := d.Health; h != nil {
			rate = successRate(h)
			lastErr = orDash(truncate(h.LastError, 40))
			circuit = orDash(h.Circuit)
			dlq = strconv.Itoa(h.DeadLetters)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, d.URL, rate, lastErr, circuit, dlq)
	}
	return tw.Flush()
}

func successRate(h *apiclient.Health) string {
	if h.SuccessRate == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%% of %d", *h.SuccessRate*100, h.Attempts)
}

// printHealth adds a subscription's health to its detail.
func printHealth(w io.Writer, h *apiclient.Health) error {
	if h == nil {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Success (recent)", successRate(h))
	row("Last attempt", when(h.LastAttemptAt))
	lastErr := orDash(h.LastError)
	if h.LastError != "" {
		lastErr += " (" + when(h.LastErrorAt) + ")"
	}
	row("Last error", lastErr)
	row("Circuit", orDash(h.Circuit))
	row("Dead letters", strconv.Itoa(h.DeadLetters))
	return tw.Flush()
}

func printTestResult(w io.Writer, r *apiclient.TestResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Delivered", strconv.FormatBool(r.Delivered))
	row("State", string(r.State))
	row("HTTP status", statusText(r.HTTPStatus))
	row("Latency", fmt.Sprintf("%.1f ms", r.LatencyMS))
	row("Error", orDash(r.Error))
	row("Response", orDash(truncate(r.Response, 200)))
	row("Delivery", r.DeliveryID)
	row("Event", r.EventID)
	return tw.Flush()
}

func printAttempts(w io.Writer, as []apiclient.Attempt) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTATE\tHTTP\tLATENCY\tATTEMPT\tEVENT TYPE\tDELIVERY\tERROR")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fms\t%d\t%s\t%s\t%s\n", when(a.At), a.State, statusText(a.HTTPStatus),
			a.LatencyMS, a.Attempt, a.EventType, a.DeliveryID, orDash(truncate(a.Error, 60)))
	}
	return tw.Flush()
}

func statusText(code int) string {
	if code == 0 {
		return "-"
	}
	return strconv.Itoa(code)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// truncate shortens s to n runes for a table cell, on one line.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
