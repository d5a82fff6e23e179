package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dev"
)

func newDevCommand() *cobra.Command {
	var (
		path    string
		dir     string
		port    int
		produce time.Duration
	)
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run herald with an embedded broker and Redis, a demo subscriber and producer",
		Long: "herald dev needs nothing installed: it starts an embedded Kafka-protocol broker (data under .herald/),\n" +
			"an embedded Redis, a demo subscriber that verifies every signature, a demo producer writing order.* events,\n" +
			"and prints every delivery. Set HERALD_KAFKA_BROKERS or HERALD_REDIS_URL to use real ones instead.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loaded, err := loadDevConfig(cmd, path)
			if err != nil {
				return err
			}
			return dev.Run(cmd.Context(), loaded, dev.Options{
				Dir: dir, KafkaPort: port, Produce: produce,
				Out: cmd.OutOrStdout(), Telemetry: telemetryConfig(loaded, true),
			})
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "optional YAML configuration file")
	cmd.Flags().StringVar(&dir, "dir", ".herald", "where the embedded broker keeps its data")
	cmd.Flags().IntVar(&port, "kafka-port", 0, "port of the embedded broker (default 9092, or any free port)")
	cmd.Flags().DurationVar(&produce, "produce-every", time.Second, "interval of the demo producer; 0 turns it off")
	cfg.BindFlags(cmd.Flags())
	return cmd
}

// loadDevConfig is loadConfig with dev's defaults: warnings only in the log,
// so the delivery lines stay readable.
func loadDevConfig(cmd *cobra.Command, path string) (config.Config, error) {
	cfg, err := loadConfig(cmd, path)
	if err != nil {
		return cfg, err
	}
	if !cmd.Flags().Changed("log-level") && cfg.Log.Level == config.Default().Log.Level {
		cfg.Log.Level = "warn"
	}
	return cfg, nil
}
