package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks request headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Signature version identifiers, the part before the comma.
const (
	VersionHMAC    = "v1"
	VersionEd25519 = "v1a"
)

// Sign returns the "v1,<base64 HMAC-SHA256>" signature of the request with
// this id, timestamp (whole seconds) and body. key is the decoded secret
// ([ParseSecret]).
func Sign(key []byte, msgID string, ts time.Time, body []byte) string {
	return SignHMAC(hmac.New(sha256.New, key), msgID, ts, body)
}

// SignHMAC is [Sign] with the key's HMAC already made: mac is
// hmac.New(sha256.New, key), new or Reset. A sender signing many requests
// with one key keeps its HMACs, and spares each signature hashing the key
// into a new one. SignHMAC writes to mac; Reset it before it signs again.
func SignHMAC(mac hash.Hash, msgID string, ts time.Time, body []byte) string {
	var sum [sha256.Size]byte
	var sig [len(VersionHMAC) + 1 + 44]byte // 44: base64 of 32 bytes
	b := append(append(sig[:0], VersionHMAC...), ',')
	return string(base64.StdEncoding.AppendEncode(b, macHMAC(sum[:0], mac, msgID, ts.Unix(), body)))
}

// SignEd25519 returns the "v1a,<base64 ed25519 signature>" of the request
// with this id, timestamp (whole seconds) and body.
func SignEd25519(key ed25519.PrivateKey, msgID string, ts time.Time, body []byte) string {
	sig := ed25519.Sign(key, signedContent(msgID, ts.Unix(), body))
	return VersionEd25519 + "," + base64.StdEncoding.EncodeToString(sig)
}

// macHMAC appends the HMAC-SHA256 of "<id>.<unix seconds>.<body>", made
// with h, to dst.
func macHMAC(dst []byte, h hash.Hash, msgID string, unix int64, body []byte) []byte {
	var head [128]byte
	prefix := append(head[:0], msgID...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, unix, 10)
	prefix = append(prefix, '.')
	h.Write(prefix)
	h.Write(body)
	return h.Sum(dst)
}

// signedContent is "<id>.<unix seconds>.<body>", what every version signs.
func signedContent(msgID string, unix int64, body []byte) []byte {
	b := make([]byte, 0, len(msgID)+22+len(body))
	b = append(b, msgID...)
	b = append(b, '.')
	b = strconv.AppendInt(b, unix, 10)
	b = append(b, '.')
	return append(b, body...)
}

// Signer signs requests with one or more keys. It is safe for concurrent use.
type Signer struct {
	secrets [][]byte
	private []ed25519.PrivateKey
}

// NewSigner returns a Signer for these keys: whsec_ secrets (the prefix is
// optional, as in [ParseSecret]) and whsk_ signing keys. During a rotation
// pass every unexpired key, newest first; each adds one signature.
func NewSigner(keys ...string) (*Signer, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	s := &Signer{}
	for i, k := range keys {
		if strings.HasPrefix(strings.TrimSpace(k), SigningKeyPrefix) {
			p, err := ParseSigningKey(k)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
			s.private = append(s.private, p)
			continue
		}
		b, err := ParseSecret(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		s.secrets = append(s.secrets, b)
	}
	return s, nil
}

// Sign returns the webhook-signature header value: one signature per key,
// separated by spaces, HMAC ("v1") signatures first.
func (s *Signer) Sign(msgID string, ts time.Time, body []byte) string {
	sigs := make([]string, 0, len(s.secrets)+len(s.private))
	for _, k := range s.secrets {
		sigs = append(sigs, Sign(k, msgID, ts, body))
	}
	for _, k := range s.private {
		sigs = append(sigs, SignEd25519(k, msgID, ts, body))
	}
	return strings.Join(sigs, " ")
}

// SetHeaders sets webhook-id, webhook-timestamp and webhook-signature on h.
func (s *Signer) SetHeaders(h http.Header, msgID string, ts time.Time, body []byte) {
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(msgID, ts, body))
}
