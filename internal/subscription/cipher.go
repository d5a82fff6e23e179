package subscription

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MasterKeySize is the size of HERALD_MASTER_KEY once decoded: AES-256.
const MasterKeySize = 32

// ErrWrongKey means a value was sealed under another master key.
var ErrWrongKey = errors.New("subscription: sealed with a different master key")

// Cipher seals secrets at rest with AES-256-GCM under the master key.
//
// A sealed value is "v1:" + base64url(key id ‖ nonce ‖ ciphertext ‖ tag).
// The version names the algorithm; the key id (4 bytes of a hash of the
// key, not enough to learn anything about it) names the key, so that a
// future key ring can pick the right key during a change of master key and,
// today, a wrong key is reported as such rather than as corruption.
type Cipher struct {
	aead  cipher.AEAD
	keyID [keyIDSize]byte
}

const (
	sealedPrefix = "v1:"
	keyIDSize    = 4
)

// NewCipher returns a Cipher for a 32-byte master key.
func NewCipher(masterKey []byte) (*Cipher, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("subscription: master key is %d bytes, want %d", len(masterKey), MasterKeySize)
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("subscription: master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("subscription: master key: %w", err)
	}
	c := &Cipher{aead: aead}
	sum := sha256.Sum256(append([]byte("herald master key id\x00"), masterKey...))
	copy(c.keyID[:], sum[:])
	return c, nil
}

// KeyID is the hex id sealed values carry, for logs.
func (c *Cipher) KeyID() string { return hex.EncodeToString(c.keyID[:]) }

// Seal encrypts plain with a fresh random nonce.
func (c *Cipher) Seal(plain []byte) (string, error) {
	ns := c.aead.NonceSize()
	buf := make([]byte, keyIDSize+ns, keyIDSize+ns+len(plain)+c.aead.Overhead())
	copy(buf, c.keyID[:])
	if _, err := rand.Read(buf[keyIDSize:]); err != nil {
		return "", fmt.Errorf("subscription: sealing: %w", err)
	}
	// The header is authenticated too, so a key id cannot be swapped.
	buf = c.aead.Seal(buf, buf[keyIDSize:], plain, buf[:keyIDSize])
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a value Seal returned. A value sealed under another key is
// ErrWrongKey; a changed value fails authentication.
func (c *Cipher) Open(sealed string) ([]byte, error) {
	enc, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		v, _, _ := strings.Cut(sealed, ":")
		return nil, fmt.Errorf("subscription: sealed value has unknown version %.8q", v)
	}
	buf, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("subscription: sealed value is not base64url: %w", err)
	}
	ns := c.aead.NonceSize()
	if len(buf) < keyIDSize+ns+c.aead.Overhead() {
		return nil, errors.New("subscription: sealed value is truncated")
	}
	if !bytes.Equal(buf[:keyIDSize], c.keyID[:]) {
		return nil, fmt.Errorf("%w (sealed with key id %x, this key is %s)", ErrWrongKey, buf[:keyIDSize], c.KeyID())
	}
	plain, err := c.aead.Open(nil, buf[keyIDSize:keyIDSize+ns], buf[keyIDSize+ns:], buf[:keyIDSize])
	if err != nil {
		return nil, errors.New("subscription: sealed value failed authentication: corrupted or tampered with")
	}
	return plain, nil
}

// ParseMasterKey decodes HERALD_MASTER_KEY: the standard base64 (padded or
// not) of 32 bytes. Generate one with `openssl rand -base64 32`.
func ParseMasterKey(b64 string) ([]byte, error) {
	s := strings.TrimSpace(b64)
	if s == "" {
		return nil, errors.New("master key is empty: set HERALD_MASTER_KEY to the base64 of 32 random bytes (openssl rand -base64 32)")
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawStdEncoding
	}
	key, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("master key is not valid base64: %v; want the base64 of 32 random bytes (openssl rand -base64 32)", err)
	}
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("master key decodes to %d bytes, want %d (openssl rand -base64 32)", len(key), MasterKeySize)
	}
	return key, nil
}
