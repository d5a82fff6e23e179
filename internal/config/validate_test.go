package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateNamesKeys(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "config: kafka.brokers: required"},
		{"broker URL", func(c *Config) { c.Kafka.Brokers = []string{"k:9092", "kafka://k2:9092"} }, "config: kafka.brokers[1]: "},
		{"same groups", func(c *Config) { c.Kafka.RetryGroup = c.Kafka.Group }, "config: kafka.retry_group: must differ"},
		{"bad SASL", func(c *Config) { c.Kafka.SASL.Mechanism = "GSSAPI" }, "config: kafka.sasl.mechanism: "},
		{"SASL no user", func(c *Config) { c.Kafka.SASL.Mechanism = SASLPlain }, "config: kafka.sasl.username: required"},
		{"cert without key", func(c *Config) { c.Kafka.TLS.CertFile = "/x.pem" }, "config: kafka.tls.cert_file: "},
		{"missing CA", func(c *Config) { c.Kafka.TLS.CAFile = "/nonexistent/ca.pem" }, "config: kafka.tls.ca_file: "},
		{"redis scheme", func(c *Config) { c.Redis.URL = "http://r:6379" }, `config: redis.url: scheme "http"`},
		{"redis no host", func(c *Config) { c.Redis.URL = "redis:///0" }, "config: redis.url: no host"},
		{"redis garbage", func(c *Config) { c.Redis.URL = "redis://r:port/0" }, "config: redis.url: not a URL"},
		{"source empty", func(c *Config) { c.Sources = append(c.Sources, Source{}) }, "config: sources[1].topic: required"},
		{"source twice", func(c *Config) { c.Sources = append(c.Sources, Source{Topic: "orders"}) }, "config: sources[1].topic: \"orders\" is listed twice"},
		{"source own topic", func(c *Config) { c.Sources = []Source{{Topic: "herald.retry.10s"}} }, "config: sources[0].topic: \"herald.retry.10s\" is one of herald's own"},
		{"source bad name", func(c *Config) { c.Sources = []Source{{Topic: "orders/v1"}} }, "config: sources[0].topic: "},
		{"listen", func(c *Config) { c.API.Listen = "8080" }, "config: api.listen: "},
		{"listen port", func(c *Config) { c.API.Listen = "localhost:http-alt" }, "config: api.listen: port"},
		{"no tokens", func(c *Config) { c.API.Tokens = nil }, "config: api.tokens: required"},
		{"short token", func(c *Config) { c.API.Tokens = []string{"secret"} }, "config: api.tokens[0]: shorter"},
		{"body limit", func(c *Config) { c.API.MaxBodyBytes = 0 }, "config: api.max_body_bytes: must be positive"},
		{"no master key", func(c *Config) { c.Secrets.MasterKey = "" }, "config: secrets.master_key: required"},
		{"short master key", func(c *Config) { c.Secrets.MasterKey = "c2hvcnQ=" }, "config: secrets.master_key: must be base64 of 32 bytes"},
		{"URL alphabet", func(c *Config) { c.Secrets.MasterKey = "-_" + testMasterKey[2:] }, "config: secrets.master_key: must be base64 of 32 bytes"},
		{"not base64", func(c *Config) { c.Secrets.MasterKey = strings.Repeat("!", 44) }, "config: secrets.master_key: must be base64 of 32 bytes"},
		{"cidr", func(c *Config) { c.Delivery.AllowCIDRs = []string{"10.0.0.0/8", "10.0.0.1"} }, "config: delivery.allow_cidrs[1]: "},
		{"in flight", func(c *Config) { c.Delivery.MaxInFlight = 0 }, "config: delivery.max_in_flight: must be positive"},
		{"event bytes", func(c *Config) { c.Delivery.MaxEventBytes = -1 }, "config: delivery.max_event_bytes: must be positive"},
		{"prefix", func(c *Config) { c.Topics.Prefix = "herald/" }, "config: topics.prefix: "},
		{"partitions", func(c *Config) { c.Topics.Partitions = 0 }, "config: topics.partitions: must be positive"},
		{"no tiers", func(c *Config) { c.Retry.Tiers = nil }, "config: retry.tiers: required"},
		{"tiers order", func(c *Config) { c.Retry.Tiers = Durations{time.Minute, 10 * time.Second} }, "config: retry.tiers: must be increasing"},
		{"tiers repeat", func(c *Config) { c.Retry.Tiers = Durations{time.Minute, time.Minute} }, "config: retry.tiers: must be increasing"},
		{"tier zero", func(c *Config) { c.Retry.Tiers = Durations{0, time.Minute} }, "config: retry.tiers: 0s must be positive"},
		{"attempts", func(c *Config) { c.Retry.MaxAttempts = 0 }, "config: retry.max_attempts: must be at least 1"},
		{"done ttl short", func(c *Config) { c.Dedupe.DoneTTL = time.Hour }, "config: dedupe.done_ttl: 1h0m0s is shorter than the retry schedule"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "config: log.level: "},
		{"log format", func(c *Config) { c.Log.Format = "text" }, "config: log.format: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v\nwant it to contain %q", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %#v", err)
			}
		})
	}
}

func TestValidateJoinsAllErrors(t *testing.T) {
	c := validConfig()
	c.Kafka.Brokers = nil
	c.Retry.MaxAttempts = 0
	c.Log.Format = "xml"
	err := c.Validate()
	if n := strings.Count(err.Error(), "config: "); n != 3 {
		t.Errorf("want 3 errors, got %d:\n%v", n, err)
	}
}

func TestValidateAccepts(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"rediss", func(c *Config) { c.Redis.URL = "rediss://user:pw@r.example.com:6380/3" }},
		{"unix socket", func(c *Config) { c.Redis.URL = "unix:///var/run/redis.sock" }},
		{"unpadded key", func(c *Config) { c.Secrets.MasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" }},
		{"listen any", func(c *Config) { c.API.Listen = ":8080" }},
		{"listen ipv6", func(c *Config) { c.API.Listen = "[::1]:8080" }},
		{"scram", func(c *Config) { c.Kafka.SASL = SASL{Mechanism: SASLScramSHA256, Username: "u", Password: "p"} }},
		{"tls CA", func(c *Config) { c.Kafka.TLS.CAFile = ca }},
		{"empty prefix", func(c *Config) { c.Topics.Prefix = "" }},
		{"no sources", func(c *Config) { c.Sources = nil }},
		{"one attempt", func(c *Config) { c.Retry.MaxAttempts = 1; c.Dedupe.DoneTTL = time.Minute }},
		{"ipv6 cidr", func(c *Config) { c.Delivery.AllowCIDRs = []string{"fd00::/8"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRetryHorizon(t *testing.T) {
	c := Default()
	// attempts 2..10 wait 10s, 1m, 10m, 1h, 6h, 6h, 6h, 6h, 6h, each +10%.
	base := 10*time.Second + time.Minute + 10*time.Minute + time.Hour + 5*6*time.Hour
	if got, want := c.RetryHorizon(), base+base/10; got != want {
		t.Errorf("RetryHorizon() = %v, want %v", got, want)
	}
	c.Retry.MaxAttempts = 1
	if got := c.RetryHorizon(); got != 0 {
		t.Errorf("one attempt: RetryHorizon() = %v", got)
	}
}

func TestSecretsKey(t *testing.T) {
	key, err := Secrets{MasterKey: testMasterKey}.Key()
	if err != nil || len(key) != 32 || key[31] != 31 {
		t.Errorf("Key() = %v, %v", key, err)
	}
}
