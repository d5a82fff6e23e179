package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far webhook-timestamp may be from the receiver's
// clock, in either direction, unless [WithTolerance] says otherwise.
const DefaultTolerance = 5 * time.Minute

// DefaultMaxBody is the body limit [Verifier.VerifyRequest] applies when
// given a limit ≤ 0.
const DefaultMaxBody = 1 << 20

// maxSignatures bounds the work one request can demand: each v1a entry costs
// an ed25519 verification per public key. herald sends one per unexpired key.
const maxSignatures = 32

// maxUnix is 9999-12-31T23:59:59Z, far enough to be "too new" for any clock.
const maxUnix = 253402300799

// Verifier checks requests against a fixed set of keys. It is safe for
// concurrent use; build one at start-up.
type Verifier struct {
	secrets   [][]byte
	public    []ed25519.PublicKey
	tolerance time.Duration
	now       func() time.Time
}

// Option configures a [Verifier]; apply it with [Verifier.With].
type Option func(*Verifier)

// WithTolerance sets how far webhook-timestamp may be from now, in either
// direction. Default [DefaultTolerance]; d ≤ 0 leaves the default, since a
// verifier without a replay window is never what a receiver wants.
func WithTolerance(d time.Duration) Option {
	return func(v *Verifier) {
		if d > 0 {
			v.tolerance = d
		}
	}
}

// WithClock sets the clock the timestamp is checked against. Default
// time.Now; tests pass a fixed clock.
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) {
		if now != nil {
			v.now = now
		}
	}
}

// NewVerifier returns a Verifier that accepts a request signed by any of
// these keys: whsec_ secrets (the prefix is optional, as in [ParseSecret])
// and whpk_ public keys. A whsk_ signing key is accepted too and stands for
// its public key. Pass both the old and the new secret while herald rotates.
func NewVerifier(keys ...string) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	v := &Verifier{tolerance: DefaultTolerance, now: time.Now}
	for i, k := range keys {
		t := strings.TrimSpace(k)
		switch {
		case strings.HasPrefix(t, PublicKeyPrefix):
			p, err := ParsePublicKey(t)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
			v.public = append(v.public, p)
		case strings.HasPrefix(t, SigningKeyPrefix):
			p, err := ParseSigningKey(t)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
			v.public = append(v.public, p.Public().(ed25519.PublicKey))
		default:
			b, err := ParseSecret(t)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
			v.secrets = append(v.secrets, b)
		}
	}
	return v, nil
}

// With returns a copy of v with the options applied; v is unchanged.
func (v *Verifier) With(opts ...Option) *Verifier {
	c := *v
	for _, o := range opts {
		o(&c)
	}
	return &c
}

// Verify checks that header carries a webhook-id, a webhook-timestamp within
// the tolerance and, in webhook-signature, at least one signature of body
// made with one of v's keys. Signatures of versions other than v1 and v1a are
// ignored. The error wraps one of the package's Err values.
func (v *Verifier) Verify(header http.Header, body []byte) error {
	p, err := v.parse(header)
	if err != nil {
		return err
	}
	return v.check(p, body)
}

// VerifyRequest reads r's body, at most maxBody bytes ([DefaultMaxBody] if
// maxBody ≤ 0), and verifies it with r's headers. It returns the body only
// when the request is genuine. The headers are checked before the body is
// read, so a request without them costs nothing. r.Body is consumed but not
// closed; the HTTP server closes it.
func (v *Verifier) VerifyRequest(r *http.Request, maxBody int64) ([]byte, error) {
	p, err := v.parse(r.Header)
	if err != nil {
		return nil, err
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	var body []byte
	if r.Body != nil {
		limit := maxBody
		if limit < math.MaxInt64 {
			limit++ // one byte more tells "too large" from "exactly the limit"
		}
		body, err = io.ReadAll(io.LimitReader(r.Body, limit))
		if err != nil {
			return nil, fmt.Errorf("webhook: reading body: %w", err)
		}
		if int64(len(body)) > maxBody {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, maxBody)
		}
	}
	if err := v.check(p, body); err != nil {
		return nil, err
	}
	return body, nil
}

// request is what parse takes from the headers.
type request struct {
	id   string
	unix int64
	sigs []signature
}

type signature struct {
	version string
	value   string // base64, still encoded
}

func (v *Verifier) parse(header http.Header) (request, error) {
	id := firstValue(header, HeaderID)
	ts := firstValue(header, HeaderTimestamp)
	sigValues := values(header, HeaderSignature)
	var missing []string
	if id == "" {
		missing = append(missing, HeaderID)
	}
	if ts == "" {
		missing = append(missing, HeaderTimestamp)
	}
	if !anyNonEmpty(sigValues) {
		missing = append(missing, HeaderSignature)
	}
	if len(missing) > 0 {
		return request{}, fmt.Errorf("%w: %s", ErrMissingHeaders, strings.Join(missing, ", "))
	}

	unix, err := parseUnix(ts)
	if err != nil {
		return request{}, err
	}
	// time.Unix wraps around far beyond year 9999, and Sub saturates, so
	// negating one difference could overflow: clamp, and take both.
	now, sent := v.now(), time.Unix(min(unix, maxUnix), 0)
	if age := now.Sub(sent); age > v.tolerance {
		return request{}, fmt.Errorf("%w: sent %v ago, tolerance %v", ErrTimestampTooOld, age.Truncate(time.Second), v.tolerance)
	}
	if ahead := sent.Sub(now); ahead > v.tolerance {
		return request{}, fmt.Errorf("%w: %v ahead, tolerance %v", ErrTimestampTooNew, ahead.Truncate(time.Second), v.tolerance)
	}

	var sigs []signature
	n := 0
	// A proxy may split the header into several lines; each holds a
	// space-separated list of its own.
	for _, line := range sigValues {
		for entry := range strings.FieldsSeq(line) {
			if n++; n > maxSignatures {
				return request{}, fmt.Errorf("%w: more than %d signatures in %s", ErrInvalidHeaders, maxSignatures, HeaderSignature)
			}
			version, value, ok := strings.Cut(entry, ",")
			if !ok || (version != VersionHMAC && version != VersionEd25519) {
				continue // unknown versions are for newer receivers
			}
			sigs = append(sigs, signature{version: version, value: value})
		}
	}
	return request{id: id, unix: unix, sigs: sigs}, nil
}

func (v *Verifier) check(p request, body []byte) error {
	var macs [][]byte // base64 HMACs, one per secret, computed on first need
	var content []byte
	for _, s := range p.sigs {
		switch s.version {
		case VersionHMAC:
			if macs == nil {
				macs = make([][]byte, len(v.secrets))
				for i, k := range v.secrets {
					macs[i] = base64.StdEncoding.AppendEncode(nil, macHMAC(nil, hmac.New(sha256.New, k), p.id, p.unix, body))
				}
			}
			for _, m := range macs {
				if hmac.Equal(m, []byte(s.value)) {
					return nil
				}
			}
		case VersionEd25519:
			if len(v.public) == 0 {
				continue
			}
			sig, err := base64.StdEncoding.DecodeString(s.value)
			if err != nil || len(sig) != ed25519.SignatureSize {
				continue
			}
			if content == nil {
				content = signedContent(p.id, p.unix, body)
			}
			for _, k := range v.public {
				if ed25519.Verify(k, content, sig) {
					return nil
				}
			}
		}
	}
	return ErrNoMatchingSignature
}

// parseUnix accepts only the canonical decimal form, the one that was signed:
// no sign, no leading zeros, no spaces.
func parseUnix(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%w: %s is not unix seconds: %.32q", ErrInvalidHeaders, HeaderTimestamp, s)
	}
	return n, nil
}

// values returns the header's values. Receivers sometimes build http.Header
// by hand from lower-case names (serverless events, other frameworks), which
// http.Header.Values would miss.
func values(h http.Header, name string) []string {
	if v, ok := h[textproto.CanonicalMIMEHeaderKey(name)]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

func firstValue(h http.Header, name string) string {
	if v := values(h, name); len(v) > 0 {
		return v[0]
	}
	return ""
}

func anyNonEmpty(vs []string) bool {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}
