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
