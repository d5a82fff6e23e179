package delivery

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/pkg/webhook"
)

// Version is herald's version, sent as user-agent "herald/<Version>". The
// build sets it with -ldflags "-X …/internal/delivery.Version=…".
var Version = "dev"

// Request is one webhook request, ready to send. Build makes it; Client.Do
// sends it and never modifies it, so one Request may be sent again.
type Request struct {
	URL     string
	Header  http.Header
	Body    []byte
	Timeout time.Duration
}

// Header names in canonical form, so Build can fill the map directly.
var (
	headerContentType     = http.CanonicalHeaderKey("content-type")
	headerUserAgent       = http.CanonicalHeaderKey("user-agent")
	headerID              = http.CanonicalHeaderKey(webhook.HeaderID)
	headerTimestamp       = http.CanonicalHeaderKey(webhook.HeaderTimestamp)
	headerSignature       = http.CanonicalHeaderKey(webhook.HeaderSignature)
	headerHexDeliveryID   = http.CanonicalHeaderKey(webhook.HeaderHexDeliveryID)
	headerHexTimestamp    = http.CanonicalHeaderKey(webhook.HeaderHexTimestamp)
	headerHexSignature    = http.CanonicalHeaderKey(webhook.HeaderHexSignature)
	headerWebhookDelivery = http.CanonicalHeaderKey("webhook-delivery")
)

var errNoSigningKey = errors.New("delivery: subscription has no unexpired signing key")

// Build makes the request that delivers ev to sub, as DESIGN.md's "The
// webhook request" fixes it: the body the subscription's payload asks for,
// signed at now with every unexpired key. An error means the request cannot
// be built at all (no key, no thin URL template, an unsendable custom
// header); retrying will not help.
func Build(ev *event.Event, sub *subscription.Subscription, deliveryID string, now time.Time) (*Request, error) {
	var (
		body        []byte
		contentType = contentTypeJSON
		err         error
	)
	switch sub.Payload {
	case subscription.PayloadEnvelope, "":
		body = ev.Shared.Envelope(func() []byte { return envelopeBody(ev) })
	case subscription.PayloadRaw:
		body, contentType = ev.Value, rawContentType(ev)
	case subscription.PayloadThin:
		body, err = thinBody(ev, sub.ThinURLTemplate)
	default:
		err = fmt.Errorf("delivery: unknown payload %q", sub.Payload)
	}
	if err != nil {
		return nil, err
	}

	secrets := sub.SigningSecrets(now)
	ts := strconv.FormatInt(now.Unix(), 10)
	// The request and the values of herald's five headers share one
	// allocation: Build runs once per attempt.
	out := &struct {
		Request
		vals [5]string
	}{}
	h := make(http.Header, 5+len(sub.Headers))
	set := func(i int, k, v string) {
		out.vals[i] = v
		h[k] = out.vals[i : i+1 : i+1]
	}
	set(0, headerContentType, contentType)
	set(1, headerUserAgent, userAgent())

	switch sub.SignatureScheme {
	case subscription.SchemeStandard, "":
		if len(secrets) == 0 && sub.SigningKey == nil {
			return nil, errNoSigningKey
		}
		set(2, headerID, deliveryID)
		set(3, headerTimestamp, ts)
		set(4, headerSignature, signatures(secrets, sub, deliveryID, now, body))
	case subscription.SchemeHex:
		if len(secrets) == 0 {
			return nil, errNoSigningKey
		}
		set(2, headerHexDeliveryID, deliveryID)
		set(3, headerHexTimestamp, ts)
		set(4, headerHexSignature, webhook.SignHex(secrets[0].Key, body))
	default:
		return nil, fmt.Errorf("delivery: unknown signature scheme %q", sub.SignatureScheme)
	}

	for name, value := range sub.Headers {
		if err := addCustomHeader(h, name, value); err != nil {
			return nil, err
		}
	}
	out.Request = Request{URL: sub.URL, Header: h, Body: body, Timeout: sub.Timeout()}
	return &out.Request, nil
}

// uaCache holds Version and the user-agent made from it, so that the string
// is built once, yet follows Version if main sets it at start-up.
var uaCache atomic.Pointer[[2]string]

func userAgent() string {
	v := Version
	if c := uaCache.Load(); c != nil && c[0] == v {
		return c[1]
	}
	ua := "herald/" + v
	uaCache.Store(&[2]string{v, ua})
	return ua
}

// signatures is the webhook-signature value: a v1 signature per HMAC key,
// newest first, then the v1a signature when the subscription has an ed25519
// key.
func signatures(secrets []subscription.Secret, sub *subscription.Subscription, id string, now time.Time, body []byte) string {
	if len(secrets) == 1 && sub.SigningKey == nil {
		return secrets[0].Sign(id, now, body)
	}
	var b strings.Builder
	for _, sec := range secrets {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(sec.Sign(id, now, body))
	}
	if sub.SigningKey != nil {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(webhook.SignEd25519(sub.SigningKey, id, now, body))
	}
	return b.String()
}

// reservedHeaders are set by herald or by the HTTP stack; a subscription's
// custom header never replaces them. Names starting with "Webhook-" and
// "Proxy-" are reserved too.
var reservedHeaders = map[string]bool{
	headerContentType:     true,
	headerUserAgent:       true,
	headerHexDeliveryID:   true,
	headerHexTimestamp:    true,
	headerHexSignature:    true,
	"Content-Length":      true,
	"Content-Encoding":    true,
	"Transfer-Encoding":   true,
	"Connection":          true,
	"Keep-Alive":          true,
	"Upgrade":             true,
	"Te":                  true,
	"Trailer":             true,
	"Host":                true,
	"Expect":              true,
	"Traceparent":         true,
	"Tracestate":          true,
	"Baggage":             true,
	"X-Forwarded-For":     true,
	"X-Forwarded-Host":    true,
	"X-Forwarded-Proto":   true,
	"X-Real-Ip":           true,
	"Forwarded":           true,
	"Accept-Encoding":     true,
	"Http2-Settings":      true,
	"Proxy-Authorization": true,
}

// reservedHeader reports whether a custom header named name (canonical) is
// skipped.
func reservedHeader(name string) bool {
	return reservedHeaders[name] || strings.HasPrefix(name, "Webhook-") || strings.HasPrefix(name, "Proxy-")
}

// addCustomHeader adds one of the subscription's headers. Validation refuses
// reserved names when a subscription is saved; here a reserved name is
// skipped rather than failing every delivery, while a name or value that
// cannot be sent at all is an error.
func addCustomHeader(h http.Header, name, value string) error {
	if !validHeaderName(name) {
		return fmt.Errorf("delivery: custom header name %q is not a valid HTTP token", name)
	}
	if !validHeaderValue(value) {
		return fmt.Errorf("delivery: custom header %q has a control character in its value", name)
	}
	key := http.CanonicalHeaderKey(name)
	if reservedHeader(key) {
		return nil
	}
	h[key] = []string{value}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses CR, LF, NUL and the other control characters
// (tab excepted) that would let a value split or corrupt the request.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
