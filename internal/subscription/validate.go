package subscription

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// FieldError says which JSON field of a subscription is wrong and why. The
// admin API returns Field as the error's "field".
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "subscription: " + e.Message
	}
	return "subscription: " + e.Field + ": " + e.Message
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Limits on a subscription's fields.
const (
	MaxURLLength         = 2048
	MaxDescriptionLength = 1024
	MaxTenantLength      = 128
	MaxTopics            = 100
	MaxEventTypes        = 100
	MaxEventTypeLength   = 256
	MaxHeaders           = 32
	MaxHeaderValueLength = 4096

	MaxRateLimitPerSecond = 100_000
	MaxMaxInFlight        = 1024
	MinTimeoutMS          = 100
	MaxTimeoutMS          = 60_000
	MaxMaxAttempts        = 50
)

// maxTopicName is Kafka's limit on a topic name.
const maxTopicName = 249

// ApplyDefaults fills the fields a client may leave out. Validate accepts a
// subscription with or without them.
func ApplyDefaults(s *Subscription) {
	if s.Payload == "" {
		s.Payload = PayloadEnvelope
	}
	if s.SignatureScheme == "" {
		s.SignatureScheme = SchemeStandard
	}
	if s.Status == "" {
		s.Status = StatusActive
	}
	if s.MaxInFlight == 0 {
		s.MaxInFlight = DefaultMaxInFlight
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.TimeoutMS == 0 {
		s.TimeoutMS = int(DefaultTimeout.Milliseconds())
	}
	// Empty lists mean "all"; [] says so in JSON where null would look like
	// a missing field.
	if s.Topics == nil {
		s.Topics = []string{}
	}
	if s.EventTypes == nil {
		s.EventTypes = []string{}
	}
}

// Validate checks the fields a client sets and returns a *FieldError naming
// the first wrong one. Empty enum fields are accepted: ApplyDefaults fills
// them. Whether the URL's address may be dialled is decided at dial time,
// after DNS resolution, not here.
func Validate(s *Subscription) error {
	if err := validateURL("url", s.URL, MaxURLLength); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(s.Description); n > MaxDescriptionLength {
		return fieldErr("description", "is %d characters, at most %d allowed", n, MaxDescriptionLength)
	}
	if n := utf8.RuneCountInString(s.Tenant); n > MaxTenantLength {
		return fieldErr("tenant", "is %d characters, at most %d allowed", n, MaxTenantLength)
	}
	if hasControl(s.Tenant) {
		return fieldErr("tenant", "must not contain control characters")
	}
	if err := validateTopics(s.Topics); err != nil {
		return err
	}
	if err := validateEventTypes(s.EventTypes); err != nil {
		return err
	}
	if err := validatePayload(s); err != nil {
		return err
	}
	switch s.SignatureScheme {
	case "", SchemeStandard, SchemeHex:
	default:
		return fieldErr("signature_scheme", "must be %q or %q, not %q", SchemeStandard, SchemeHex, s.SignatureScheme)
	}
	if err := validateHeaders(s.Headers); err != nil {
		return err
	}
	if err := validateLimits(s); err != nil {
		return err
	}
	switch s.Status {
	case "", StatusActive, StatusPaused, StatusDisabled:
	default:
		return fieldErr("status", "must be %q, %q or %q, not %q", StatusActive, StatusPaused, StatusDisabled, s.Status)
	}
	return nil
}

func validateURL(field, raw string, max int) error {
	if raw == "" {
		return fieldErr(field, "is required")
	}
	if len(raw) > max {
		return fieldErr(field, "is %d bytes long, at most %d allowed", len(raw), max)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fieldErr(field, "is not a valid URL: %v", unwrapURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fieldErr(field, "must be an absolute http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return fieldErr(field, "must have a host")
	}
	if u.User != nil {
		return fieldErr(field, "must not contain credentials (user:password@); use headers instead")
	}
	return nil
}

// unwrapURLError drops url.Error's repetition of the whole URL, which the
// client already has.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func validateTopics(topics []string) error {
	if len(topics) > MaxTopics {
		return fieldErr("topics", "has %d entries, at most %d allowed", len(topics), MaxTopics)
	}
	for i, t := range topics {
		if !validTopicName(t) {
			return fieldErr("topics", "entry %d (%q) is not a Kafka topic name: 1 to %d of a-z A-Z 0-9 . _ -", i, t, maxTopicName)
		}
		for _, prev := range topics[:i] {
			if prev == t {
				return fieldErr("topics", "entry %d (%q) is listed twice", i, t)
			}
		}
	}
	return nil
}

func validTopicName(t string) bool {
	if t == "" || len(t) > maxTopicName || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func validateEventTypes(types []string) error {
	if len(types) > MaxEventTypes {
		return fieldErr("event_types", "has %d entries, at most %d allowed", len(types), MaxEventTypes)
	}
	for i, p := range types {
		if err := checkPattern(p); err != "" {
			return fieldErr("event_types", "entry %d (%q) %s", i, p, err)
		}
		for _, prev := range types[:i] {
			if prev == p {
				return fieldErr("event_types", "entry %d (%q) is listed twice", i, p)
			}
		}
	}
	return nil
}

// checkPattern returns why p is not an event-type pattern, or "". A pattern
// is an exact type, "*", or "<prefix>.*".
func checkPattern(p string) string {
	switch {
	case p == "":
		return "is empty"
	case len(p) > MaxEventTypeLength:
		return fmt.Sprintf("is longer than %d bytes", MaxEventTypeLength)
	case p == "*":
		return ""
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f {
			return "must not contain spaces or control characters"
		}
	}
	prefix, wild := strings.CutSuffix(p, ".*")
	if wild && prefix == "" {
		return `has an empty prefix: use "*" for every type`
	}
	if strings.Contains(prefix, "*") {
		return `may use "*" only alone or as a last ".*" segment (order.created, order.*, *)`
	}
	return ""
}

func validatePayload(s *Subscription) error {
	switch s.Payload {
	case "", PayloadEnvelope, PayloadRaw:
	case PayloadThin:
		if s.ThinURLTemplate == "" {
			return fieldErr("thin_url_template", "is required when payload is %q", PayloadThin)
		}
	default:
		return fieldErr("payload", "must be %q, %q or %q, not %q", PayloadEnvelope, PayloadRaw, PayloadThin, s.Payload)
	}
	if s.ThinURLTemplate == "" {
		return nil
	}
	if !strings.Contains(s.ThinURLTemplate, "{id}") {
		return fieldErr("thin_url_template", "must contain {id}, where the resource id goes")
	}
	// {id} is not valid in every URL part, so check the URL it becomes.
	return validateURL("thin_url_template", strings.ReplaceAll(s.ThinURLTemplate, "{id}", "id"), MaxURLLength)
}

func validateHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return fieldErr("headers", "has %d entries, at most %d allowed", len(h), MaxHeaders)
	}
	seen := make(map[string]string, len(h))
	for name, value := range h {
		if !validToken(name) {
			return fieldErr("headers", "%q is not a valid header name", name)
		}
		lower := strings.ToLower(name)
		if reservedHeader(lower) {
			return fieldErr("headers", "%q is set by herald and cannot be overridden", name)
		}
		if other, ok := seen[lower]; ok {
			return fieldErr("headers", "%q and %q are the same header", other, name)
		}
		seen[lower] = name
		if strings.ContainsAny(value, "\r\n\x00") {
			return fieldErr("headers", "value of %q must not contain CR, LF or NUL", name)
		}
		if len(value) > MaxHeaderValueLength {
			return fieldErr("headers", "value of %q is longer than %d bytes", name, MaxHeaderValueLength)
		}
	}
	return nil
}

// reservedHeader reports whether herald or the HTTP client owns the header
// named lower (lower case): signatures, tracing, framing.
func reservedHeader(lower string) bool {
	switch lower {
	case "content-type", "content-length", "content-encoding", "transfer-encoding",
		"host", "user-agent", "connection", "keep-alive", "upgrade", "te", "trailer",
		"expect", "traceparent", "tracestate", "x-signature":
		return true
	}
	for _, prefix := range []string{"webhook-", "x-webhook-", "proxy-"} {
		if strings.HasPrefix(lower, prefix) {
			return true
		}
	}
	return false
}

// validToken reports whether s is an RFC 9110 token, what a header name is.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validateLimits(s *Subscription) error {
	if s.RateLimitPerSecond < 0 || s.RateLimitPerSecond > MaxRateLimitPerSecond {
		return fieldErr("rate_limit_per_second", "must be 0 (unlimited) to %d", MaxRateLimitPerSecond)
	}
	if s.MaxInFlight < 0 || s.MaxInFlight > MaxMaxInFlight {
		return fieldErr("max_in_flight", "must be 0 (default %d) to %d", DefaultMaxInFlight, MaxMaxInFlight)
	}
	if s.TimeoutMS != 0 && (s.TimeoutMS < MinTimeoutMS || s.TimeoutMS > MaxTimeoutMS) {
		return fieldErr("timeout_ms", "must be 0 (default %d) or %d to %d", DefaultTimeout.Milliseconds(), MinTimeoutMS, MaxTimeoutMS)
	}
	if s.MaxAttempts < 0 || s.MaxAttempts > MaxMaxAttempts {
		return fieldErr("max_attempts", "must be 0 (default %d) to %d", DefaultMaxAttempts, MaxMaxAttempts)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return true
		}
	}
	return false
}
