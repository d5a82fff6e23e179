package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadYAML(t *testing.T) {
	path := writeFile(t, `
kafka:
  brokers: [k1:9092, k2:9092]
  group: billing-herald
  tls:
    insecure_skip_verify: true
  sasl: {mechanism: SCRAM-SHA-512, username: herald, password: pw}
redis:
  url: rediss://cache:6380/2
sources:
  - topic: orders
    id_field: order_id
  - topic: payments
    type_header: event-type
api:
  listen: 0.0.0.0:9000
  tokens: [t1]
secrets:
  master_key: `+testMasterKey+`
delivery:
  allow_cidrs: [10.1.0.0/16]
  max_in_flight: 500
topics:
  create: false
retry:
  tiers: [5s, 30s, 5m]
  max_attempts: 4
dedupe:
  done_ttl: 48h
log: {level: debug, format: console}
`)
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Kafka.Brokers, []string{"k1:9092", "k2:9092"}) {
		t.Errorf("kafka.brokers = %v", c.Kafka.Brokers)
	}
	if c.Kafka.Group != "billing-herald" || c.Kafka.RetryGroup != "herald-retry" {
		t.Errorf("groups = %q, %q; the file's group and the default retry group", c.Kafka.Group, c.Kafka.RetryGroup)
	}
	if !c.Kafka.TLS.InsecureSkipVerify || c.Kafka.SASL.Password != "pw" || c.Kafka.SASL.Mechanism != SASLScramSHA512 {
		t.Errorf("kafka = %+v / %#v", c.Kafka.TLS, c.Kafka.SASL.Password)
	}
	if c.Redis.URL != "rediss://cache:6380/2" {
		t.Errorf("redis.url = %q", c.Redis.URL)
	}
	wantSources := []Source{{Topic: "orders", IDField: "order_id"}, {Topic: "payments", TypeHeader: "event-type"}}
	if !slices.Equal(c.Sources, wantSources) {
		t.Errorf("sources = %+v", c.Sources)
	}
	if c.API.Listen != "0.0.0.0:9000" || c.API.MaxBodyBytes != 1<<20 {
		t.Errorf("api = %+v", c.API)
	}
	if c.Delivery.MaxInFlight != 500 || c.Delivery.MaxEventBytes != 1<<20 || c.Delivery.AllowCIDRs[0] != "10.1.0.0/16" {
		t.Errorf("delivery = %+v", c.Delivery)
	}
	if c.Topics.Create || c.Topics.Prefix != "herald." {
		t.Errorf("topics = %+v; create false from the file, default prefix", c.Topics)
	}
	if c.Retry.Tiers.String() != "5s,30s,5m" || c.Retry.MaxAttempts != 4 {
		t.Errorf("retry = %v, %d", c.Retry.Tiers, c.Retry.MaxAttempts)
	}
	if c.Dedupe.DoneTTL != 48*time.Hour || c.Log.Level != "debug" || c.Log.Format != "console" {
		t.Errorf("dedupe/log = %v %+v", c.Dedupe.DoneTTL, c.Log)
	}
}

func TestLoadTiersAsCommaString(t *testing.T) {
	c, err := Load(writeFile(t, "retry:\n  tiers: \"10s, 1m,1h30m\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Durations{10 * time.Second, time.Minute, 90 * time.Minute}
	if !slices.Equal(c.Retry.Tiers, want) {
		t.Errorf("tiers = %v, want %v", c.Retry.Tiers, want)
	}
}

func TestLoadBadDurationNamesLine(t *testing.T) {
	_, err := Load(writeFile(t, "retry:\n  tiers: [10s, soon]\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `line 2: "soon" is not a duration`) {
		t.Errorf("err = %v", err)
	}
	_, err = Load(writeFile(t, "dedupe:\n  done_ttl: 7 days\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadUnknownKeysNamed(t *testing.T) {
	path := writeFile(t, `kafka:
  brokers: [k:9092]
  tls:
    enabeld: true
retry:
  maxAttempts: 3
sources:
  - topic: orders
    idfield: x
colour: blue
`)
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("Load accepted unknown keys")
	}
	for _, want := range []string{
		"config: kafka.tls.enabeld (" + path + ":4): unknown key",
		"config: retry.maxAttempts (" + path + ":6): unknown key (did you mean max_attempts?)",
		"config: sources[0].idfield (" + path + ":9): unknown key (did you mean id_field?)",
		"config: colour (" + path + ":10): unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("error is not a *FieldError: %T", err)
	}
}

func TestLoadEmptyPathAndEmptyFile(t *testing.T) {
	for name, path := range map[string]string{
		"no path":       "",
		"comments only": writeFile(t, "# nothing yet\n"),
	} {
		c, err := Load(path, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if c.Kafka.Group != "herald" {
			t.Errorf("%s: defaults lost: %+v", name, c.Kafka)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want not-exist", err)
	}
}

func TestParseDurations(t *testing.T) {
	tests := []struct {
		in   string
		want Durations
		err  bool
	}{
		{"10s,1m", Durations{10 * time.Second, time.Minute}, false},
		{" 500ms , 6h ,", Durations{500 * time.Millisecond, 6 * time.Hour}, false},
		{"", nil, false},
		{"10", nil, true},
		{"10s,x", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseDurations(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("ParseDurations(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if s := (Durations{10 * time.Second, time.Minute, 90 * time.Minute, 168 * time.Hour}).String(); s != "10s,1m,1h30m,168h" {
		t.Errorf("String() = %q", s)
	}
}

// String's YAML must load back to the same config, so a dumped config is a
// starting point for a file.
func TestStringRoundTrips(t *testing.T) {
	c := validConfig()
	c.Kafka.SASL = SASL{Mechanism: SASLPlain, Username: "u"}
	c.API.Tokens = nil
	c.Secrets.MasterKey = ""
	got, err := Load(writeFile(t, c.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != c.String() {
		t.Errorf("round trip changed the config:\n%s\nvs\n%s", got.String(), c.String())
	}
}
