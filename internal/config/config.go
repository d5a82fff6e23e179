// Package config holds herald's configuration: one Config struct with
// defaults, read from a YAML file, then HERALD_* environment variables, then
// command-line flags, each layer overriding the one before, and checked once
// at start-up by Validate.
//
// Every file key has an environment variable. Its name is HERALD_ followed by
// the key's path with dots replaced by underscores, upper-cased:
// delivery.max_in_flight is HERALD_DELIVERY_MAX_IN_FLIGHT. The names that
// DESIGN.md fixes for scripts are honoured as well, and are the ones to use:
//
//	HERALD_KAFKA_BROKERS           kafka.brokers
//	HERALD_REDIS_URL               redis.url
//	HERALD_SOURCE_TOPICS           sources[].topic
//	HERALD_API_LISTEN              api.listen
//	HERALD_API_TOKENS              api.tokens
//	HERALD_MASTER_KEY              secrets.master_key
//	HERALD_ALLOW_PRIVATE_NETWORKS  delivery.allow_private_networks
//	HERALD_TOPIC_PREFIX            topics.prefix
//	HERALD_RETRY_TIERS             retry.tiers
//	HERALD_MAX_ATTEMPTS            retry.max_attempts
//	HERALD_GROUP                   kafka.group
//
// Lists (brokers, tokens, CIDRs, tiers) are comma-separated. HERALD_SOURCES
// takes the whole sources list as YAML flow text, for example
// [{topic: orders, id_field: order_id}]; HERALD_SOURCE_TOPICS=orders,payments
// is the short form that names topics only, keeping the file's per-topic
// settings for topics it also lists. A variable set to the empty string
// counts as unset, so that compose files can pass ${VAR} through.
//
// Typical use from a command:
//
//	cfg := config.Default()
//	cfg.BindFlags(cmd.Flags())
//	// after flag parsing:
//	cfg, err := config.Load(path, os.LookupEnv)
//	err = cfg.ApplyFlags(cmd.Flags())
//	err = cfg.Validate()
//
// Never print a Config with its secrets: String and Redacted hide the master
// key, the SASL password and the API tokens.
package config

import "time"

// Config is the whole of herald's configuration.
type Config struct {
	Kafka    Kafka    `yaml:"kafka"`
	Redis    Redis    `yaml:"redis"`
	Sources  []Source `yaml:"sources"`
	API      API      `yaml:"api"`
	Secrets  Secrets  `yaml:"secrets"`
	Delivery Delivery `yaml:"delivery"`
	Topics   Topics   `yaml:"topics"`
	Retry    Retry    `yaml:"retry"`
	Dedupe   Dedupe   `yaml:"dedupe"`
	Log      Log      `yaml:"log"`
}

// Kafka says how to reach the brokers and which consumer groups to join.
type Kafka struct {
	// Brokers are the bootstrap addresses, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Group is the dispatcher's consumer group on the source topics.
	Group string `yaml:"group"`
	// RetryGroup is the consumer group of the retry tier consumers.
	RetryGroup string `yaml:"retry_group"`
	ClientID   string `yaml:"client_id"`
	TLS        TLS    `yaml:"tls"`
	SASL       SASL   `yaml:"sasl"`
}

// TLS configures the connection to the brokers. Setting any file implies
// Enabled.
type TLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates;
	// empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are herald's client certificate for mutual TLS.
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// On reports whether TLS is wanted, explicitly or by naming a file.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
}

// SASL mechanisms herald speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL authenticates to the brokers. An empty Mechanism turns SASL off.
type SASL struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password" secret:"true"`
}

// Redis is the dedupe store.
type Redis struct {
	// URL is redis://[user:password@]host:port/db, rediss:// for TLS, or
	// unix:///path. Required.
	URL string `yaml:"url" secret:"userinfo"`
}

// Source is one topic herald reads events from, and where in its records the
// event id and type are when the CloudEvents headers are absent. Empty fields
// take the defaults described in DESIGN.md ("Identities").
type Source struct {
	Topic      string `yaml:"topic"`
	IDHeader   string `yaml:"id_header"`
	IDField    string `yaml:"id_field"`
	TypeHeader string `yaml:"type_header"`
	TypeField  string `yaml:"type_field"`
}

// API is the admin HTTP API, dashboard and metrics endpoint.
type API struct {
	Listen string `yaml:"listen"`
	// Tokens are the accepted bearer tokens; several allow rotation.
	Tokens []string `yaml:"tokens" secret:"true"`
	// MaxBodyBytes bounds request bodies, ingested events included.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Secrets protects subscription secrets at rest.
type Secrets struct {
	// MasterKey is standard base64, padded or not, of 32 random bytes: the
	// AES-256-GCM key. Required.
	MasterKey string `yaml:"master_key" secret:"true"`
}

// Delivery bounds outgoing webhook requests.
type Delivery struct {
	// AllowPrivateNetworks lets deliveries reach loopback, private,
	// link-local and metadata addresses. Off outside the dev mode.
	AllowPrivateNetworks bool `yaml:"allow_private_networks"`
	// AllowCIDRs are ranges allowed even when private networks are not.
	AllowCIDRs []string `yaml:"allow_cidrs"`
	// MaxInFlight bounds deliveries pending in this instance, all endpoints
	// together; fetching pauses while it is reached. While the process is
	// short of CPU, fewer are taken on (herald_deliveries_admit_limit).
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxEventBytes bounds a source record's value; larger ones are rejected.
	MaxEventBytes int `yaml:"max_event_bytes"`
	// UserAgent replaces the default herald/<version> when set.
	UserAgent string `yaml:"user_agent"`
}

// Topics names and sizes herald's own topics.
type Topics struct {
	Prefix string `yaml:"prefix"`
	// Partitions is the partition count of the retry, outcome and dead
	// letter topics that herald creates.
	Partitions int `yaml:"partitions"`
	// Create creates missing topics at start-up.
	Create bool `yaml:"create"`
}

// Retry is the default retry schedule: the first attempt is immediate, then
// one tier after another, the last tier repeating until MaxAttempts.
type Retry struct {
	Tiers       Durations `yaml:"tiers"`
	MaxAttempts int       `yaml:"max_attempts"`
}

// Dedupe configures duplicate suppression.
type Dedupe struct {
	// DoneTTL is how long a delivered mark is kept; it must outlast the
	// whole retry schedule.
	DoneTTL time.Duration `yaml:"done_ttl"`
}

// Log formats.
const (
	LogJSON    = "json"
	LogConsole = "console"
)

// Log configures herald's own logs.
type Log struct {
	// Level is a zap level: debug, info, warn, error.
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default returns the configuration herald runs with when nothing is set.
// Kafka brokers, the Redis URL, the master key and the API tokens have no
// default; Validate reports them missing.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Group:      "herald",
			RetryGroup: "herald-retry",
			ClientID:   "herald",
		},
		API: API{
			Listen:       "127.0.0.1:8080",
			MaxBodyBytes: 1 << 20,
		},
		Delivery: Delivery{
			MaxInFlight:   10000,
			MaxEventBytes: 1 << 20,
		},
		Topics: Topics{
			Prefix:     "herald.",
			Partitions: 12,
			Create:     true,
		},
		Retry: Retry{
			Tiers:       Durations{10 * time.Second, time.Minute, 10 * time.Minute, time.Hour, 6 * time.Hour},
			MaxAttempts: 10,
		},
		Dedupe: Dedupe{DoneTTL: 7 * 24 * time.Hour},
		Log:    Log{Level: "info", Format: LogJSON},
	}
}

// SourceTopics returns the topics of c.Sources, in order.
func (c *Config) SourceTopics() []string {
	topics := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		topics[i] = s.Topic
	}
	return topics
}
