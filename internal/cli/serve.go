package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/telemetry"
)

func newServeCommand() *cobra.Command {
	var path string
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run herald against real Kafka and Redis (production)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loaded, err := loadConfig(cmd, path)
			if err != nil {
				return err
			}
			return app.Run(cmd.Context(), loaded, app.Options{Telemetry: telemetryConfig(loaded, false)})
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", os.Getenv("HERALD_CONFIG"), "YAML configuration file (env HERALD_CONFIG)")
	cfg.BindFlags(cmd.Flags())
	return cmd
}

// loadConfig reads the file, then HERALD_* variables, then the flags the
// user set on cmd.
func loadConfig(cmd *cobra.Command, path string) (config.Config, error) {
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		return cfg, err
	}
	if err := cfg.ApplyFlags(cmd.Flags()); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// telemetryConfig names herald in traces and metrics and sets up its logs:
// JSON in serve, console in dev.
func telemetryConfig(cfg config.Config, console bool) telemetry.Config {
	return telemetry.Config{
		ServiceName: "herald",
		Version:     delivery.Version,
		Console:     console || cfg.Log.Format == config.LogConsole,
		LogLevel:    cfg.Log.Level,
	}
}
