// Package subscription holds who receives what: the subscription model and
// its validation, the compacted topic that stores subscriptions, and the
// in-memory index every instance matches events against.
package subscription

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"slices"
	"sync"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// Status says whether a subscription receives deliveries.
type Status string

const (
	StatusActive   Status = "active"
	StatusPaused   Status = "paused"   // deliveries park and resume where they were
	StatusDisabled Status = "disabled" // set by a 410 Gone or an operator; nothing is sent
)

// Payload is the shape of the request body.
type Payload string

const (
	PayloadEnvelope Payload = "envelope"
	PayloadRaw      Payload = "raw"
	PayloadThin     Payload = "thin"
)

// SignatureScheme is how a request is signed.
type SignatureScheme string

const (
	SchemeStandard SignatureScheme = "standard"
	SchemeHex      SignatureScheme = "hex"
)

// Subscription is one endpoint and the events it wants. Its JSON form is the
// API's; secrets never appear in it.
type Subscription struct {
	ID              string            `json:"id"`
	URL             string            `json:"url"`
	Description     string            `json:"description,omitempty"`
	Tenant          string            `json:"tenant,omitempty"`
	Topics          []string          `json:"topics"`
	EventTypes      []string          `json:"event_types"`
	Payload         Payload           `json:"payload"`
	ThinURLTemplate string            `json:"thin_url_template,omitempty"`
	SignatureScheme SignatureScheme   `json:"signature_scheme"`
	Headers         map[string]string `json:"headers,omitempty"`

	RateLimitPerSecond int `json:"rate_limit_per_second,omitempty"`
	MaxInFlight        int `json:"max_in_flight,omitempty"`
	TimeoutMS          int `json:"timeout_ms,omitempty"`
	MaxAttempts        int `json:"max_attempts,omitempty"`

	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Version rises by one on every change; PATCH checks it (If-Match).
	Version int64 `json:"version"`

	// PublicKey is the whpk_ key receivers verify v1a signatures with, when
	// the subscription signs asymmetrically.
	PublicKey string `json:"public_key,omitempty"`

	// Secrets are the decrypted HMAC keys, newest first. Never serialised.
	Secrets []Secret `json:"-"`
	// SigningKey is the decrypted ed25519 key for v1a signatures, if any.
	SigningKey ed25519.PrivateKey `json:"-"`
}

// Secret is one HMAC key. A rotated-out key keeps signing until ExpiresAt;
// the current key has a zero ExpiresAt.
type Secret struct {
	Key       []byte
	ExpiresAt time.Time

	// macs holds HMACs of Key, kept between requests (NewSecret): making
	// one hashes the key into two states, a third of the cost of signing
	// a request.
	macs *sync.Pool
}

// NewSecret returns the Secret of key that keeps its HMACs between the
// requests it signs: the secrets of the snapshots Store serves, which are
// decoded from the topic. A Secret written as a literal (a version being
// built to be written) signs too, making an HMAC for each.
func NewSecret(key []byte, expiresAt time.Time) Secret {
	return Secret{Key: key, ExpiresAt: expiresAt, macs: &sync.Pool{
		New: func() any { return hmac.New(sha256.New, key) },
	}}
}

// Sign returns the v1 signature of a request with this id, timestamp and
// body ([webhook.Sign]).
func (s Secret) Sign(msgID string, ts time.Time, body []byte) string {
	if s.macs == nil {
		return webhook.Sign(s.Key, msgID, ts, body)
	}
	mac := s.macs.Get().(hash.Hash)
	sig := webhook.SignHMAC(mac, msgID, ts, body)
	mac.Reset()
	s.macs.Put(mac)
	return sig
}

// SigningSecrets returns the secrets that sign a request sent at now,
// newest first: the current one and every rotated-out one still in its
// grace period.
func (s *Subscription) SigningSecrets(now time.Time) []Secret {
	live := func(sec Secret) bool { return sec.ExpiresAt.IsZero() || now.Before(sec.ExpiresAt) }
	if !slices.ContainsFunc(s.Secrets, func(sec Secret) bool { return !live(sec) }) {
		return s.Secrets[:len(s.Secrets):len(s.Secrets)] // the usual case, without a copy
	}
	secrets := make([]Secret, 0, len(s.Secrets))
	for _, sec := range s.Secrets {
		if live(sec) {
			secrets = append(secrets, sec)
		}
	}
	return secrets
}

// Timeout is the request timeout, with the default applied.
func (s *Subscription) Timeout() time.Duration {
	if s.TimeoutMS <= 0 {
		return DefaultTimeout
	}
	return time.Duration(s.TimeoutMS) * time.Millisecond
}

// Defaults applied when a field is left out.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxInFlight = 16
	DefaultMaxAttempts = 10
)
