package webhook

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Key prefixes. They let one configuration value hold any kind of key and
// make a leaked secret easy to recognise.
const (
	SecretPrefix     = "whsec_"
	SigningKeyPrefix = "whsk_"
	PublicKeyPrefix  = "whpk_"
)

// Secret sizes, in decoded bytes, that Standard Webhooks allows.
const (
	MinSecretSize = 24
	MaxSecretSize = 64
)

// newSecretSize is 256 bits: as long as the HMAC-SHA256 output.
const newSecretSize = 32

// NewSecret returns a new shared secret: "whsec_" and the base64 of 32
// random bytes.
func NewSecret() (string, error) {
	b := make([]byte, newSecretSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: generating secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseSecret returns the HMAC key a whsec_ secret encodes. Like the Standard
// Webhooks libraries it also accepts the bare base64 without the prefix, and
// it ignores surrounding white space (a secret pasted into an env file often
// ends in a newline). The key must be 24 to 64 bytes long.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, SigningKeyPrefix) || strings.HasPrefix(s, PublicKeyPrefix) {
		return nil, fmt.Errorf("%w: %.5s… is an ed25519 key, not a whsec_ secret", ErrInvalidKey, s)
	}
	b, err := decodeKey(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: whsec_ secret: %v", ErrInvalidKey, err)
	}
	if len(b) < MinSecretSize || len(b) > MaxSecretSize {
		return nil, fmt.Errorf("%w: whsec_ secret is %d bytes, want %d to %d",
			ErrInvalidKey, len(b), MinSecretSize, MaxSecretSize)
	}
	return b, nil
}

// NewKeyPair returns a new ed25519 key pair for asymmetric ("v1a")
// signatures. The signing key is "whsk_" and the base64 of the 32-byte seed
// (RFC 8032's private key, as the Standard Webhooks Go library uses); the
// public key is "whpk_" and the base64 of the 32-byte public key.
func NewKeyPair() (signingKey, publicKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("webhook: generating key pair: %w", err)
	}
	return SigningKeyPrefix + base64.StdEncoding.EncodeToString(priv.Seed()),
		PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

// ParseSigningKey returns the ed25519 private key a whsk_ string encodes.
// The base64 may hold the 32-byte seed ([NewKeyPair]'s form) or the 64-byte
// seed‖public key form of crypto/ed25519; in the latter the public half must
// match the seed. The prefix is optional.
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	b, err := decodeKey(strings.TrimPrefix(strings.TrimSpace(s), SigningKeyPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: whsk_ key: %v", ErrInvalidKey, err)
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if !k.Equal(ed25519.PrivateKey(b)) {
			return nil, fmt.Errorf("%w: whsk_ key: public half does not match the seed", ErrInvalidKey)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: whsk_ key is %d bytes, want %d (seed) or %d",
			ErrInvalidKey, len(b), ed25519.SeedSize, ed25519.PrivateKeySize)
	}
}

// ParsePublicKey returns the ed25519 public key a whpk_ string encodes. The
// prefix is optional.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeKey(strings.TrimPrefix(strings.TrimSpace(s), PublicKeyPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: whpk_ key: %v", ErrInvalidKey, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: whpk_ key is %d bytes, want %d",
			ErrInvalidKey, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// maxEncodedKey bounds the input before decoding; base64 of 64 bytes is 88
// characters, so anything much longer is not a key.
const maxEncodedKey = 128

// decodeKey decodes standard base64, padded or not, because secrets copied
// between systems often lose their trailing '='.
func decodeKey(s string) ([]byte, error) {
	switch {
	case s == "":
		return nil, fmt.Errorf("empty")
	case len(s) > maxEncodedKey:
		return nil, fmt.Errorf("%d characters is too long", len(s))
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawStdEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not valid base64: %v", err)
	}
	return b, nil
}
