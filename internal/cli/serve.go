package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
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
			log, err := newLogger(loaded.Log, false)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return app.Run(cmd.Context(), loaded, app.Options{Logger: log})
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

func newLogger(c config.Log, console bool) (*zap.Logger, error) {
	level := zap.NewAtomicLevel()
	if c.Level != "" {
		if err := level.UnmarshalText([]byte(c.Level)); err != nil {
			return nil, fmt.Errorf("config: log.level: %w", err)
		}
	}
	zc := zap.NewProductionConfig()
	if console || c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	}
	zc.Level = level
	return zc.Build()
}
