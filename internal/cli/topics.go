package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
)

func newTopicsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Manage herald's own Kafka topics",
	}
	var path string
	cfg := config.Default()
	create := &cobra.Command{
		Use:   "create",
		Short: "Create herald's topics (subscriptions, retry tiers, dlq, outcomes) with explicit partitions and configs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loaded, err := loadConfig(cmd, path)
			if err != nil {
				return err
			}
			names, err := app.CreateTopics(cmd.Context(), loaded)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	create.Flags().StringVarP(&path, "config", "c", os.Getenv("HERALD_CONFIG"), "YAML configuration file (env HERALD_CONFIG)")
	cfg.BindFlags(create.Flags())
	cmd.AddCommand(create)
	return cmd
}
