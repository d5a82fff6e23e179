package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func newFlags(t *testing.T) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("herald", pflag.ContinueOnError)
	d := Default()
	d.BindFlags(fs)
	return fs
}

func TestFlagsOverrideEnv(t *testing.T) {
	fs := newFlags(t)
	err := fs.Parse([]string{
		"--kafka-brokers=flag1:9092,flag2:9092",
		"--source-topics", "orders",
		"--allow-private-networks",
		"--retry-tiers=1s,2s",
		"--log-level=debug",
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load("", mapEnv(map[string]string{
		"HERALD_KAFKA_BROKERS":          "env:9092",
		"HERALD_REDIS_URL":              "redis://env:6379/0",
		"HERALD_ALLOW_PRIVATE_NETWORKS": "false",
		"HERALD_MAX_ATTEMPTS":           "4",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyFlags(fs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Kafka.Brokers, []string{"flag1:9092", "flag2:9092"}) {
		t.Errorf("brokers = %v, want the flag's", c.Kafka.Brokers)
	}
	if c.Redis.URL != "redis://env:6379/0" || c.Retry.MaxAttempts != 4 {
		t.Errorf("flags not given must leave env values: redis %q, attempts %d", c.Redis.URL, c.Retry.MaxAttempts)
	}
	if !c.Delivery.AllowPrivateNetworks {
		t.Error("--allow-private-networks without a value did not set true")
	}
	if got := c.SourceTopics(); !slices.Equal(got, []string{"orders"}) {
		t.Errorf("sources = %v", got)
	}
	if c.Retry.Tiers.String() != "1s,2s" || c.Log.Level != "debug" {
		t.Errorf("tiers %v, level %q", c.Retry.Tiers, c.Log.Level)
	}
}

func TestFlagBoolFalseOverridesEnvTrue(t *testing.T) {
	fs := newFlags(t)
	if err := fs.Parse([]string{"--allow-private-networks=false"}); err != nil {
		t.Fatal(err)
	}
	c, _ := Load("", mapEnv(map[string]string{"HERALD_ALLOW_PRIVATE_NETWORKS": "true"}))
	if err := c.ApplyFlags(fs); err != nil {
		t.Fatal(err)
	}
	if c.Delivery.AllowPrivateNetworks {
		t.Error("--allow-private-networks=false did not win over the environment")
	}
}

func TestFlagParseErrorAtParse(t *testing.T) {
	fs := newFlags(t)
	fs.SetOutput(&strings.Builder{})
	err := fs.Parse([]string{"--max-attempts=many"})
	if err == nil || !strings.Contains(err.Error(), "max-attempts") || !strings.Contains(err.Error(), "not an integer") {
		t.Errorf("err = %v", err)
	}
}

func TestFlagHelpShowsDefaultsAndEnv(t *testing.T) {
	fs := newFlags(t)
	usage := fs.FlagUsages()
	for _, want := range []string{
		`--api-listen string`, `(default "127.0.0.1:8080")`, "HERALD_API_LISTEN",
		`--retry-tiers durations`, `10s,1m,10m,1h,6h`,
		"--allow-private-networks", "HERALD_ALLOW_PRIVATE_NETWORKS",
		"--kafka-brokers", "--redis-url", "--source-topics", "--log-level",
	} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage lacks %q:\n%s", want, usage)
		}
	}
	if strings.Contains(usage, "master") || strings.Contains(usage, "token") {
		t.Errorf("secrets must not have flags:\n%s", usage)
	}
}
