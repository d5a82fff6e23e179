package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Validate reports every problem in c, each a *FieldError naming its key,
// joined.
func (c *Config) Validate() error {
	v := &validator{}
	c.validateKafka(v)
	c.validateRedis(v)
	c.validateSources(v)
	c.validateAPI(v)
	if _, err := c.Secrets.Key(); err != nil {
		v.add("secrets.master_key", err)
	}
	c.validateDelivery(v)
	c.validateTopics(v)
	c.validateRetry(v)
	switch c.Log.Level {
	case "debug", "info", "warn", "error", "dpanic", "panic", "fatal":
	default:
		v.addf("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != LogJSON && c.Log.Format != LogConsole {
		v.addf("log.format", "%q is not json or console", c.Log.Format)
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(key string, err error) {
	v.errs = append(v.errs, &FieldError{Key: key, Err: err})
}

func (v *validator) addf(key, format string, args ...any) {
	v.add(key, fmt.Errorf(format, args...))
}

var errRequired = errors.New("required")

func (c *Config) validateKafka(v *validator) {
	k := c.Kafka
	if len(k.Brokers) == 0 {
		v.add("kafka.brokers", errRequired)
	}
	for i, b := range k.Brokers {
		if strings.TrimSpace(b) == "" || strings.Contains(b, "://") {
			v.addf(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if k.Group == "" {
		v.add("kafka.group", errRequired)
	}
	if k.RetryGroup == "" {
		v.add("kafka.retry_group", errRequired)
	} else if k.RetryGroup == k.Group {
		v.addf("kafka.retry_group", "must differ from kafka.group (%q)", k.Group)
	}
	if (k.TLS.CertFile == "") != (k.TLS.KeyFile == "") {
		v.addf("kafka.tls.cert_file", "cert_file and key_file go together")
	}
	for key, path := range map[string]string{
		"kafka.tls.ca_file":   k.TLS.CAFile,
		"kafka.tls.cert_file": k.TLS.CertFile,
		"kafka.tls.key_file":  k.TLS.KeyFile,
	} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			v.add(key, err)
		}
	}
	switch k.SASL.Mechanism {
	case "":
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if k.SASL.Username == "" {
			v.addf("kafka.sasl.username", "required with mechanism %s", k.SASL.Mechanism)
		}
	default:
		v.addf("kafka.sasl.mechanism", "%q is not one of %s, %s, %s",
			k.SASL.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
}

func (c *Config) validateRedis(v *validator) {
	if c.Redis.URL == "" {
		v.add("redis.url", errRequired)
		return
	}
	u, err := url.Parse(c.Redis.URL)
	if err != nil {
		v.addf("redis.url", "not a URL: %v", errors.Unwrap(err))
		return
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			v.addf("redis.url", "no host (want redis://host:port/db)")
		}
	case "unix":
		if u.Path == "" {
			v.addf("redis.url", "no socket path (want unix:///path/to/redis.sock)")
		}
	default:
		v.addf("redis.url", "scheme %q is not redis, rediss or unix", u.Scheme)
	}
}

func (c *Config) validateSources(v *validator) {
	seen := make(map[string]bool)
	for i, s := range c.Sources {
		key := fmt.Sprintf("sources[%d].topic", i)
		switch {
		case s.Topic == "":
			v.add(key, errRequired)
		case seen[s.Topic]:
			v.addf(key, "%q is listed twice", s.Topic)
		case c.ownTopic(s.Topic):
			v.addf(key, "%q is one of herald's own topics", s.Topic)
		default:
			if err := checkTopicName(s.Topic); err != nil {
				v.add(key, err)
			}
		}
		seen[s.Topic] = true
	}
}

func (c *Config) ownTopic(topic string) bool {
	p := c.Topics.Prefix
	switch topic {
	case p + "subscriptions", p + "outcomes", p + "dlq":
		return true
	}
	return strings.HasPrefix(topic, p+"retry.")
}

func (c *Config) validateAPI(v *validator) {
	_, port, err := net.SplitHostPort(c.API.Listen)
	if err != nil {
		v.addf("api.listen", "%q is not host:port: %v", c.API.Listen, errors.Unwrap(err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.addf("api.listen", "port %q is not a number from 0 to 65535", port)
	}
	if len(c.API.Tokens) == 0 {
		v.addf("api.tokens", "required: the admin API takes only bearer tokens")
	}
	for i, t := range c.API.Tokens {
		if len(t) < 16 {
			v.addf(fmt.Sprintf("api.tokens[%d]", i), "shorter than 16 characters")
		}
	}
	if c.API.MaxBodyBytes <= 0 {
		v.addf("api.max_body_bytes", "must be positive")
	}
}

// Key returns the decoded master key.
func (s Secrets) Key() ([]byte, error) {
	if s.MasterKey == "" {
		return nil, errRequired
	}
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(s.MasterKey), "="))
	if err != nil || len(key) != 32 {
		return nil, errors.New("must be base64 of 32 bytes (openssl rand -base64 32)")
	}
	return key, nil
}

func (c *Config) validateDelivery(v *validator) {
	for i, cidr := range c.Delivery.AllowCIDRs {
		if _, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err != nil {
			v.addf(fmt.Sprintf("delivery.allow_cidrs[%d]", i), "%q is not a CIDR such as 10.1.0.0/16", cidr)
		}
	}
	if c.Delivery.MaxInFlight <= 0 {
		v.addf("delivery.max_in_flight", "must be positive")
	}
	if c.Delivery.MaxEventBytes <= 0 {
		v.addf("delivery.max_event_bytes", "must be positive")
	}
}

func (c *Config) validateTopics(v *validator) {
	if c.Topics.Prefix != "" {
		if err := checkTopicName(c.Topics.Prefix); err != nil {
			v.add("topics.prefix", err)
		}
	}
	if c.Topics.Partitions <= 0 {
		v.addf("topics.partitions", "must be positive")
	}
}

// checkTopicName applies Kafka's rule for topic names.
func checkTopicName(name string) error {
	if len(name) > 249 {
		return errors.New("longer than Kafka's 249 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q has %q; Kafka topic names allow only letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}

func (c *Config) validateRetry(v *validator) {
	tiers := c.Retry.Tiers
	if len(tiers) == 0 {
		v.add("retry.tiers", errRequired)
	}
	for i, d := range tiers {
		switch {
		case d <= 0:
			v.addf("retry.tiers", "%s must be positive", d)
		case i > 0 && d <= tiers[i-1]:
			v.addf("retry.tiers", "must be increasing (%s after %s)", d, tiers[i-1])
		}
	}
	if c.Retry.MaxAttempts < 1 {
		v.addf("retry.max_attempts", "must be at least 1")
	}
	if c.Dedupe.DoneTTL <= 0 {
		v.addf("dedupe.done_ttl", "must be positive")
	} else if h := c.RetryHorizon(); c.Dedupe.DoneTTL < h {
		v.addf("dedupe.done_ttl", "%s is shorter than the retry schedule (%s), so late retries could deliver twice", c.Dedupe.DoneTTL, h)
	}
}

// RetryHorizon is the longest a delivery can stay pending: the sum of the
// delays before every attempt after the first, each with the most jitter
// (10%) the schedule adds.
func (c *Config) RetryHorizon() time.Duration {
	tiers := c.Retry.Tiers
	if len(tiers) == 0 {
		return 0
	}
	var total time.Duration
	for i := range max(c.Retry.MaxAttempts-1, 0) {
		d := tiers[min(i, len(tiers)-1)]
		total += d + d/10
	}
	return total
}
