package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// The variables of DESIGN.md's "Configuration names that scripts rely on"
// table, each with the key it must set.
func TestEnvDesignTable(t *testing.T) {
	env := map[string]string{
		"HERALD_KAFKA_BROKERS":          "k1:9092, k2:9092",
		"HERALD_REDIS_URL":              "redis://r:6379/1",
		"HERALD_SOURCE_TOPICS":          "orders,payments",
		"HERALD_API_LISTEN":             ":9999",
		"HERALD_API_TOKENS":             "tok-one-aaaaaaaaaaaa,tok-two-bbbbbbbbbbbb",
		"HERALD_MASTER_KEY":             testMasterKey,
		"HERALD_ALLOW_PRIVATE_NETWORKS": "true",
		"HERALD_TOPIC_PREFIX":           "acme.herald.",
		"HERALD_RETRY_TIERS":            "10s,1m",
		"HERALD_MAX_ATTEMPTS":           "3",
		"HERALD_GROUP":                  "herald-blue",
	}
	c, err := Load("", mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		env       string
		got, want any
	}{
		{"HERALD_KAFKA_BROKERS", strings.Join(c.Kafka.Brokers, "|"), "k1:9092|k2:9092"},
		{"HERALD_REDIS_URL", c.Redis.URL, "redis://r:6379/1"},
		{"HERALD_SOURCE_TOPICS", strings.Join(c.SourceTopics(), "|"), "orders|payments"},
		{"HERALD_API_LISTEN", c.API.Listen, ":9999"},
		{"HERALD_API_TOKENS", strings.Join(c.API.Tokens, "|"), "tok-one-aaaaaaaaaaaa|tok-two-bbbbbbbbbbbb"},
		{"HERALD_MASTER_KEY", c.Secrets.MasterKey, testMasterKey},
		{"HERALD_ALLOW_PRIVATE_NETWORKS", c.Delivery.AllowPrivateNetworks, true},
		{"HERALD_TOPIC_PREFIX", c.Topics.Prefix, "acme.herald."},
		{"HERALD_RETRY_TIERS", c.Retry.Tiers.String(), "10s,1m"},
		{"HERALD_MAX_ATTEMPTS", c.Retry.MaxAttempts, 3},
		{"HERALD_GROUP", c.Kafka.Group, "herald-blue"},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.env, tc.got, tc.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("config from the design table's variables is invalid: %v", err)
	}
}

func TestEnvDerivedNames(t *testing.T) {
	env := map[string]string{
		"HERALD_KAFKA_RETRY_GROUP":               "rg",
		"HERALD_KAFKA_CLIENT_ID":                 "cid",
		"HERALD_KAFKA_TLS_ENABLED":               "1",
		"HERALD_KAFKA_TLS_CA_FILE":               "/ca.pem",
		"HERALD_KAFKA_SASL_MECHANISM":            "PLAIN",
		"HERALD_KAFKA_SASL_PASSWORD":             "pw",
		"HERALD_API_MAX_BODY_BYTES":              "2048",
		"HERALD_DELIVERY_ALLOW_CIDRS":            "10.0.0.0/8,192.168.1.0/24",
		"HERALD_DELIVERY_MAX_IN_FLIGHT":          "77",
		"HERALD_DELIVERY_MAX_EVENT_BYTES":        "4096",
		"HERALD_DELIVERY_USER_AGENT":             "acme-hooks/1",
		"HERALD_TOPICS_PARTITIONS":               "3",
		"HERALD_TOPICS_CREATE":                   "false",
		"HERALD_DEDUPE_DONE_TTL":                 "36h",
		"HERALD_LOG_LEVEL":                       "warn",
		"HERALD_LOG_FORMAT":                      "console",
		"HERALD_RETRY_MAX_ATTEMPTS":              "5", // derived name of an aliased key still works
		"HERALD_DELIVERY_ALLOW_PRIVATE_NETWORKS": "true",
	}
	c, err := Load("", mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		env       string
		got, want any
	}{
		{"HERALD_KAFKA_RETRY_GROUP", c.Kafka.RetryGroup, "rg"},
		{"HERALD_KAFKA_CLIENT_ID", c.Kafka.ClientID, "cid"},
		{"HERALD_KAFKA_TLS_ENABLED", c.Kafka.TLS.Enabled, true},
		{"HERALD_KAFKA_TLS_CA_FILE", c.Kafka.TLS.CAFile, "/ca.pem"},
		{"HERALD_KAFKA_SASL_MECHANISM", c.Kafka.SASL.Mechanism, "PLAIN"},
		{"HERALD_KAFKA_SASL_PASSWORD", c.Kafka.SASL.Password, "pw"},
		{"HERALD_API_MAX_BODY_BYTES", c.API.MaxBodyBytes, int64(2048)},
		{"HERALD_DELIVERY_ALLOW_CIDRS", strings.Join(c.Delivery.AllowCIDRs, "|"), "10.0.0.0/8|192.168.1.0/24"},
		{"HERALD_DELIVERY_MAX_IN_FLIGHT", c.Delivery.MaxInFlight, 77},
		{"HERALD_DELIVERY_MAX_EVENT_BYTES", c.Delivery.MaxEventBytes, 4096},
		{"HERALD_DELIVERY_USER_AGENT", c.Delivery.UserAgent, "acme-hooks/1"},
		{"HERALD_TOPICS_PARTITIONS", c.Topics.Partitions, 3},
		{"HERALD_TOPICS_CREATE", c.Topics.Create, false},
		{"HERALD_DEDUPE_DONE_TTL", c.Dedupe.DoneTTL, 36 * time.Hour},
		{"HERALD_LOG_LEVEL", c.Log.Level, "warn"},
		{"HERALD_LOG_FORMAT", c.Log.Format, "console"},
		{"HERALD_RETRY_MAX_ATTEMPTS", c.Retry.MaxAttempts, 5},
		{"HERALD_DELIVERY_ALLOW_PRIVATE_NETWORKS", c.Delivery.AllowPrivateNetworks, true},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.env, tc.got, tc.want)
		}
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := writeFile(t, `
kafka: {brokers: [file:9092], group: from-file}
sources:
  - {topic: orders, id_field: order_id}
  - {topic: legacy}
retry: {tiers: [1s, 2s]}
`)
	c, err := Load(path, mapEnv(map[string]string{
		"HERALD_KAFKA_BROKERS": "env:9092",
		"HERALD_SOURCE_TOPICS": "payments,orders",
		"HERALD_RETRY_TIERS":   "30s,5m,1h",
		"HERALD_GROUP":         "", // empty counts as unset
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Kafka.Brokers, []string{"env:9092"}) || c.Kafka.Group != "from-file" {
		t.Errorf("kafka = %+v", c.Kafka)
	}
	// Topics listed by the variable keep the file's settings; others go.
	want := []Source{{Topic: "payments"}, {Topic: "orders", IDField: "order_id"}}
	if !slices.Equal(c.Sources, want) {
		t.Errorf("sources = %+v, want %+v", c.Sources, want)
	}
	if !slices.Equal(c.Retry.Tiers, Durations{30 * time.Second, 5 * time.Minute, time.Hour}) {
		t.Errorf("tiers = %v", c.Retry.Tiers)
	}
}

func TestEnvSourcesAsYAML(t *testing.T) {
	c, err := Load("", mapEnv(map[string]string{
		"HERALD_SOURCES": "[{topic: orders, id_field: order_id, type_header: kind}, {topic: payments}]",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{{Topic: "orders", IDField: "order_id", TypeHeader: "kind"}, {Topic: "payments"}}
	if !slices.Equal(c.Sources, want) {
		t.Errorf("sources = %+v", c.Sources)
	}
	_, err = Load("", mapEnv(map[string]string{"HERALD_SOURCES": "[{topic: orders, idfield: x}]"}))
	if err == nil || !strings.Contains(err.Error(), "config: sources (HERALD_SOURCES):") {
		t.Errorf("unknown field in HERALD_SOURCES: err = %v", err)
	}
}

func TestEnvParseErrorsNameVariableAndKey(t *testing.T) {
	_, err := Load("", mapEnv(map[string]string{
		"HERALD_MAX_ATTEMPTS":           "ten",
		"HERALD_RETRY_TIERS":            "10s,soon",
		"HERALD_ALLOW_PRIVATE_NETWORKS": "yes please",
		"HERALD_DEDUPE_DONE_TTL":        "7d",
	}))
	if err == nil {
		t.Fatal("Load accepted unparsable variables")
	}
	for _, want := range []string{
		`config: retry.max_attempts (HERALD_MAX_ATTEMPTS): "ten" is not an integer`,
		`config: retry.tiers (HERALD_RETRY_TIERS): "soon" is not a duration`,
		`config: delivery.allow_private_networks (HERALD_ALLOW_PRIVATE_NETWORKS): "yes please" is not a boolean`,
		`config: dedupe.done_ttl (HERALD_DEDUPE_DONE_TTL): "7d" is not a duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Origin == "" {
		t.Errorf("want a *FieldError with its variable, got %#v", err)
	}
}

func TestEnvAliasConflict(t *testing.T) {
	_, err := Load("", mapEnv(map[string]string{
		"HERALD_GROUP":       "a",
		"HERALD_KAFKA_GROUP": "b",
	}))
	if err == nil || !strings.Contains(err.Error(), "config: kafka.group (HERALD_GROUP, HERALD_KAFKA_GROUP)") {
		t.Errorf("err = %v", err)
	}
	c, err := Load("", mapEnv(map[string]string{
		"HERALD_GROUP":       "same",
		"HERALD_KAFKA_GROUP": "same",
	}))
	if err != nil || c.Kafka.Group != "same" {
		t.Errorf("same value under both names: %v, %q", err, c.Kafka.Group)
	}
}
