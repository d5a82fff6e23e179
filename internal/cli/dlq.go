package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/apiclient"
)

// NewDLQCommand returns `herald dlq`, which lists and replays dead letters
// through a running server's admin API.
func NewDLQCommand() *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List and replay dead letters on a running herald server",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "admin API address (env HERALD_SERVER; default "+defaultServer+")")
	pf.StringVar(&f.token, "token", "", "admin API bearer token (env HERALD_TOKEN)")
	pf.StringVarP(&f.output, "output", "o", outputTable, "output format: table or json")
	cmd.AddCommand(newDLQList(f), newDLQReplay(f))
	return cmd
}

// dlqFilterFlags select dead letters by subscription, time and id.
type dlqFilterFlags struct {
	subscription, since, until string
	ids                        []string
	limit                      int
}

func (ff *dlqFilterFlags) register(cmd *cobra.Command, withLimit bool) {
	fl := cmd.Flags()
	fl.StringVar(&ff.subscription, "subscription", "", "only dead letters of this subscription")
	fl.StringVar(&ff.since, "since", "", "dead-lettered at or after: RFC 3339 or a duration back from now, e.g. 24h")
	fl.StringVar(&ff.until, "until", "", "dead-lettered before: RFC 3339 or a duration back from now")
	fl.StringSliceVar(&ff.ids, "id", nil, "delivery id (repeatable or comma-separated)")
	if withLimit {
		fl.IntVar(&ff.limit, "limit", 0, "at most this many, the oldest (server default 100, max 1000)")
	}
}

func (ff *dlqFilterFlags) filter(now time.Time) (apiclient.DLQFilter, error) {
	f := apiclient.DLQFilter{SubscriptionID: ff.subscription, IDs: ff.ids, Limit: ff.limit}
	var err error
	if f.Since, err = parseTimeFlag("--since", ff.since, now); err != nil {
		return f, err
	}
	if f.Until, err = parseTimeFlag("--until", ff.until, now); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, errors.New("--until must be after --since")
	}
	if ff.limit < 0 {
		return f, errors.New("--limit must not be negative")
	}
	return f, nil
}

func (ff *dlqFilterFlags) empty() bool {
	return ff.subscription == "" && ff.since == "" && ff.until == "" && len(ff.ids) == 0
}

func newDLQList(f *apiFlags) *cobra.Command {
	ff := &dlqFilterFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Example: `  herald dlq list --subscription sub_123 --since 24h
  herald dlq list --id msg_abc,msg_def -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			filter, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			entries, err := c.ListDLQ(cmdContext(cmd), filter)
			if err != nil {
				return explain("list dead letters", server, err)
			}
			if entries == nil {
				entries = []apiclient.DeadLetter{}
			}
			if f.output == outputJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"data": entries})
			}
			return printDeadLetterTable(cmd.OutOrStdout(), entries)
		},
	}
	ff.register(cmd, true)
	return cmd
}

func newDLQReplay(f *apiFlags) *cobra.Command {
	ff := &dlqFilterFlags{}
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-deliver dead letters, attempts reset, same delivery ids",
		Long: "Puts the selected dead letters back into the first retry tier with their attempts reset.\n" +
			"They keep their delivery ids, so a receiver that did get one can drop it, and herald's\n" +
			"dedupe drops one already delivered. At least one filter is required.",
		Example: `  herald dlq replay --subscription sub_123
  herald dlq replay --subscription sub_123 --since 2024-05-01T00:00:00Z --until 2024-05-02T00:00:00Z
  herald dlq replay --id msg_abc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ff.empty() {
				return errors.New("select what to replay: --subscription, --since, --until or --id")
			}
			c, server, err := f.client()
			if err != nil {
				return err
			}
			filter, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			n, err := c.ReplayDLQ(cmdContext(cmd), filter)
			if err != nil {
				return explain("replay dead letters", server, err)
			}
			if f.output == outputJSON {
				return printJSON(cmd.OutOrStdout(), map[string]int{"replayed": n})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Replayed %d dead letters\n", n)
			return err
		},
	}
	ff.register(cmd, false)
	return cmd
}

// printDeadLetterTable prints one row per dead letter.
func printDeadLetterTable(w io.Writer, entries []apiclient.DeadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAD-LETTERED\tDELIVERY ID\tSUBSCRIPTION\tEVENT TYPE\tREASON\tATTEMPTS\tLAST STATUS\tLAST ERROR")
	for _, e := range entries {
		reason := e.Reason
		if e.Corrupt != "" {
			reason = orDash(reason) + " (corrupt: not replayable)"
		}
		status := "-"
		if e.LastStatus != 0 {
			status = strconv.Itoa(e.LastStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			e.Timestamp.Format(time.RFC3339), orDash(e.DeliveryID), orDash(e.SubscriptionID), orDash(e.EventType),
			orDash(reason), e.Attempts, status, orDash(oneLine(e.LastError, 60)))
	}
	return tw.Flush()
}

// oneLine keeps a message on one table row.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
