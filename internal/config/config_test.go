package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	checks := []struct {
		key       string
		got, want any
	}{
		{"kafka.group", c.Kafka.Group, "herald"},
		{"kafka.retry_group", c.Kafka.RetryGroup, "herald-retry"},
		{"api.listen", c.API.Listen, "127.0.0.1:8080"},
		{"delivery.allow_private_networks", c.Delivery.AllowPrivateNetworks, false},
		{"delivery.max_in_flight", c.Delivery.MaxInFlight, 10000},
		{"delivery.max_event_bytes", c.Delivery.MaxEventBytes, 1 << 20},
		{"topics.prefix", c.Topics.Prefix, "herald."},
		{"topics.partitions", c.Topics.Partitions, 12},
		{"topics.create", c.Topics.Create, true},
		{"retry.tiers", c.Retry.Tiers.String(), "10s,1m,10m,1h,6h"},
		{"retry.max_attempts", c.Retry.MaxAttempts, 10},
		{"dedupe.done_ttl", c.Dedupe.DoneTTL, 7 * 24 * time.Hour},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.key, tc.got, tc.want)
		}
	}
}

// The defaults plus the four values only an operator can supply must pass
// Validate, or herald cannot start with the documented minimum settings.
func TestDefaultPlusRequiredIsValid(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultAloneNamesEveryMissingKey(t *testing.T) {
	c := Default()
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil for a config without brokers, redis, key and tokens")
	}
	for _, want := range []string{
		"config: kafka.brokers: required",
		"config: redis.url: required",
		"config: secrets.master_key: required",
		"config: api.tokens: required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	c := validConfig()
	c.Kafka.SASL = SASL{Mechanism: SASLScramSHA512, Username: "herald", Password: "sasl-password-1"}
	c.Redis.URL = "redis://user:redis-password-1@cache:6379/0"
	secrets := []string{c.Secrets.MasterKey, "sasl-password-1", "redis-password-1", c.API.Tokens[0], c.API.Tokens[1]}

	renders := map[string]string{
		"String":         c.String(),
		"%v":             fmt.Sprintf("%v", c),
		"%+v":            fmt.Sprintf("%+v", c),
		"%#v":            fmt.Sprintf("%#v", c),
		"%+v of Kafka":   fmt.Sprintf("%+v", c.Kafka),
		"%+v of API":     fmt.Sprintf("%+v", c.API),
		"%+v of Secrets": fmt.Sprintf("%+v", c.Secrets),
		"%+v of Redis":   fmt.Sprintf("%+v", c.Redis),
	}
	for name, out := range renders {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows secret %q:\n%s", name, s, out)
			}
		}
	}
	if !strings.Contains(c.String(), "username: herald") || !strings.Contains(c.String(), "cache:6379") {
		t.Errorf("String() hides more than the secrets:\n%s", c.String())
	}

	r := c.Redacted()
	if r.API.Tokens[0] != "REDACTED" || len(r.API.Tokens) != 2 {
		t.Errorf("Redacted().API.Tokens = %v", r.API.Tokens)
	}
	if c.API.Tokens[0] == "REDACTED" || c.Secrets.MasterKey == "REDACTED" {
		t.Error("Redacted() changed the original config")
	}
}

func TestEveryKeyHasAnEnvVariable(t *testing.T) {
	// A leaf added to Config without a yaml tag would still get a derived
	// name; this pins that the walk reaches nested structs.
	want := map[string]string{
		"kafka.tls.insecure_skip_verify": "HERALD_KAFKA_TLS_INSECURE_SKIP_VERIFY",
		"kafka.sasl.password":            "HERALD_KAFKA_SASL_PASSWORD",
		"delivery.max_in_flight":         "HERALD_DELIVERY_MAX_IN_FLIGHT",
		"dedupe.done_ttl":                "HERALD_DEDUPE_DONE_TTL",
		"sources":                        "HERALD_SOURCES",
		"kafka.group":                    "HERALD_GROUP",
	}
	for key, env := range want {
		f, ok := fieldByKey[key]
		if !ok {
			t.Errorf("no field %s", key)
			continue
		}
		if !slices.Contains(f.envs, env) {
			t.Errorf("%s: env names %v lack %s", key, f.envs, env)
		}
	}
	if len(fields) < 30 {
		t.Errorf("only %d keys found; the walk missed some", len(fields))
	}
}

const testMasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0..31

func validConfig() Config {
	c := Default()
	c.Kafka.Brokers = []string{"localhost:9092"}
	c.Redis.URL = "redis://localhost:6379/0"
	c.Secrets.MasterKey = testMasterKey
	c.API.Tokens = []string{"token-aaaaaaaaaaaaaaaa", "token-bbbbbbbbbbbbbbbb"}
	c.Sources = []Source{{Topic: "orders"}}
	return c
}
