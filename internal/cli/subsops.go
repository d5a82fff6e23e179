package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/subscription"
)

// newSubsStatus is `subs pause` or `subs resume`.
func newSubsStatus(f *apiFlags, use string, status subscription.Status) *cobra.Command {
	short := "Pause deliveries: they wait in the retry tiers, spending no attempts"
	if status == subscription.StatusActive {
		short = "Resume deliveries of paused subscriptions"
	}
	return &cobra.Command{
		Use:   use + " ID...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			for _, id := range args {
				sub, err := c.SetStatus(cmdContext(cmd), id, string(status))
				if err != nil {
					return explain(use+" "+id, server, err)
				}
				if f.output == outputJSON {
					err = printJSON(cmd.OutOrStdout(), sub)
				} else {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is %s\n", sub.ID, sub.Status)
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newSubsTest(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "test ID",
		Short: "Send a herald.test event now and show the attempt",
		Long: "Sends one herald.test event through the real delivery path, whatever the " +
			"subscription's status, and prints the attempt. Exits non-zero when it was not delivered.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			res, err := c.SendTest(cmdContext(cmd), args[0])
			if err != nil {
				return explain("test "+args[0], server, err)
			}
			if f.output == outputJSON {
				err = printJSON(cmd.OutOrStdout(), res)
			} else {
				err = printTestResult(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return err
			}
			if !res.Delivered {
				return errors.New("the test event was not delivered")
			}
			return nil
		},
	}
}

func newSubsAttempts(f *apiFlags) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "attempts ID",
		Short: "Show a subscription's recent delivery attempts, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			as, err := c.Attempts(cmdContext(cmd), args[0], limit)
			if err != nil {
				return explain("attempts of "+args[0], server, err)
			}
			if f.output == outputJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"data": as})
			}
			return printAttempts(cmd.OutOrStdout(), as)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "how many (server default 20, max 100)")
	return cmd
}
