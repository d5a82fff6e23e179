package subscription

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// record is the value of a subscription in the compacted topic: the API
// fields plus the secrets, sealed with the master key. Decoding is lenient
// about unknown fields, so that an older instance can read what a newer one
// wrote during a rolling upgrade.
type record struct {
	Subscription
	Secrets    []sealedSecret `json:"secrets"`
	SigningKey string         `json:"signing_key,omitempty"` // sealed ed25519 seed
}

type sealedSecret struct {
	Sealed    string    `json:"sealed"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func encodeRecord(s *Subscription, c *Cipher) ([]byte, error) {
	r := record{Subscription: *s}
	r.Subscription.Secrets, r.Subscription.SigningKey = nil, nil
	for _, sec := range s.Secrets {
		sealed, err := c.Seal(sec.Key)
		if err != nil {
			return nil, err
		}
		r.Secrets = append(r.Secrets, sealedSecret{Sealed: sealed, ExpiresAt: sec.ExpiresAt})
	}
	if s.SigningKey != nil {
		sealed, err := c.Seal(s.SigningKey.Seed())
		if err != nil {
			return nil, err
		}
		r.SigningKey = sealed
	}
	return json.Marshal(&r)
}

// decodeRecord turns a record value into a subscription with its secrets
// opened. An error says what is wrong with the record; the caller logs it
// with the key.
func decodeRecord(value []byte, c *Cipher) (*Subscription, error) {
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, fmt.Errorf("malformed record: %w", err)
	}
	s := r.Subscription
	s.Secrets = make([]Secret, 0, len(r.Secrets))
	for i, sec := range r.Secrets {
		key, err := c.Open(sec.Sealed)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		s.Secrets = append(s.Secrets, NewSecret(key, sec.ExpiresAt))
	}
	if r.SigningKey != "" {
		seed, err := c.Open(r.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("signing key is %d bytes, want %d", len(seed), ed25519.SeedSize)
		}
		s.SigningKey = ed25519.NewKeyFromSeed(seed)
	}
	return &s, nil
}

// clone returns a deep copy of s, for building the next version of an
// immutable snapshot.
func (s *Subscription) clone() *Subscription {
	c := *s
	c.Topics = slices.Clone(s.Topics)
	c.EventTypes = slices.Clone(s.EventTypes)
	c.Headers = maps.Clone(s.Headers)
	c.Secrets = make([]Secret, len(s.Secrets))
	for i, sec := range s.Secrets {
		c.Secrets[i] = Secret{Key: slices.Clone(sec.Key), ExpiresAt: sec.ExpiresAt}
	}
	c.SigningKey = slices.Clone(s.SigningKey)
	return &c
}

// publicKeyOf is the whpk_ form of k's public half.
func publicKeyOf(k ed25519.PrivateKey) string {
	return webhook.PublicKeyPrefix + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}
