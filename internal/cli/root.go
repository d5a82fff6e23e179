// Package cli is herald's command line: the server roles (serve, dev) and the
// client commands that talk to a running server.
package cli

import (
	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/delivery"
)

// NewRoot returns the herald command with every subcommand.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "herald",
		Short:         "Kafka-native webhook dispatcher",
		Long:          "herald reads existing Kafka topics and delivers each event as a signed webhook to every subscription that matches it.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       delivery.Version,
	}
	root.AddCommand(
		newServeCommand(),
		newDevCommand(),
		newTopicsCommand(),
		NewSubsCommand(),
		NewEventsCommand(),
		NewCompletionCommand(),
		NewDLQCommand(),
		NewReplayCommand(),
	)
	return root
}
