package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/apiclient"
)

// NewEventsCommand returns `herald events`, which publishes events through
// a running server's POST /v1/events, for producers without Kafka.
func NewEventsCommand() *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Publish events through a running herald server",
	}
	f.register(cmd)
	cmd.AddCommand(newEventsSend(f))
	return cmd
}

func newEventsSend(f *apiFlags) *cobra.Command {
	var ev apiclient.Event
	var data, dataFile, idemKey string
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Publish one event to the ingest topic",
		Long: "Publishes one event and returns once the broker has it. With --idempotency-key, " +
			"running the same command again publishes nothing and prints the first event's id.",
		Example: `  herald events send --type order.created --data '{"order_id": 42}'
  herald events send --type order.paid --data-file paid.json --key order-42 --idempotency-key pay-42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			if ev.Type == "" {
				return errors.New("--type is required")
			}
			raw := []byte(data)
			switch {
			case dataFile != "" && data != "":
				return errors.New("--data and --data-file cannot be combined")
			case dataFile != "":
				if raw, err = readFile(cmd.InOrStdin(), dataFile); err != nil {
					return err
				}
			case data == "":
				return errors.New("--data or --data-file is required")
			}
			if !json.Valid(raw) {
				return errors.New("the event data is not valid JSON")
			}
			ev.Data = raw
			sent, err := c.SendEvent(cmdContext(cmd), &ev, idemKey)
			if err != nil {
				return explain("send event", server, err)
			}
			if f.output == outputJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": sent.ID, "replayed": sent.Replayed})
			}
			if sent.Replayed {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Already published as %s (same idempotency key)\n", sent.ID)
			} else {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Published %s\n", sent.ID)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&ev.Type, "type", "", "event type, e.g. order.created (required)")
	fl.StringVar(&data, "data", "", "event data as JSON")
	fl.StringVar(&dataFile, "data-file", "", `read the event data from this file ("-" for stdin)`)
	fl.StringVar(&ev.ID, "id", "", "event id (default: generated)")
	fl.StringVar(&ev.Key, "key", "", "Kafka record key, e.g. the entity id, to keep its events in order")
	fl.StringVar(&idemKey, "idempotency-key", "", "publish at most once per key (kept 24h)")
	return cmd
}
