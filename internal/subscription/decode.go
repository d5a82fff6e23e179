package subscription

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
)

// ErrTooLarge is returned by Decode and DecodePatch when the body exceeds
// maxBytes; the API answers it with 413.
var ErrTooLarge = errors.New("subscription: request body too large")

// DefaultMaxBodyBytes bounds a subscription body when maxBytes is 0.
const DefaultMaxBodyBytes = 64 << 10

// readOnly are fields of the API representation that the server sets.
var readOnly = map[string]bool{
	"id": true, "created_at": true, "updated_at": true, "version": true, "public_key": true,
}

// fieldDecoder decodes one JSON member into its destination.
type fieldDecoder[T any] map[string]func(dst *T, raw json.RawMessage) error

var subscriptionFields = fieldDecoder[Subscription]{
	"url":                   func(s *Subscription, r json.RawMessage) error { return into(&s.URL, r) },
	"description":           func(s *Subscription, r json.RawMessage) error { return into(&s.Description, r) },
	"tenant":                func(s *Subscription, r json.RawMessage) error { return into(&s.Tenant, r) },
	"topics":                func(s *Subscription, r json.RawMessage) error { return into(&s.Topics, r) },
	"event_types":           func(s *Subscription, r json.RawMessage) error { return into(&s.EventTypes, r) },
	"payload":               func(s *Subscription, r json.RawMessage) error { return into(&s.Payload, r) },
	"thin_url_template":     func(s *Subscription, r json.RawMessage) error { return into(&s.ThinURLTemplate, r) },
	"signature_scheme":      func(s *Subscription, r json.RawMessage) error { return into(&s.SignatureScheme, r) },
	"headers":               func(s *Subscription, r json.RawMessage) error { return into(&s.Headers, r) },
	"rate_limit_per_second": func(s *Subscription, r json.RawMessage) error { return into(&s.RateLimitPerSecond, r) },
	"max_in_flight":         func(s *Subscription, r json.RawMessage) error { return into(&s.MaxInFlight, r) },
	"timeout_ms":            func(s *Subscription, r json.RawMessage) error { return into(&s.TimeoutMS, r) },
	"max_attempts":          func(s *Subscription, r json.RawMessage) error { return into(&s.MaxAttempts, r) },
	"status":                func(s *Subscription, r json.RawMessage) error { return into(&s.Status, r) },
}

// Decode reads a subscription as a client sends it to POST
// /v1/subscriptions. It is strict: an unknown or server-owned field, a value
// of the wrong type, or anything after the object is a *FieldError naming
// the field. A body over maxBytes (0: DefaultMaxBodyBytes) is ErrTooLarge.
// Decode does not validate; call ApplyDefaults and Validate.
func Decode(r io.Reader, maxBytes int64) (*Subscription, error) {
	s := new(Subscription)
	if err := decodeStrict(r, maxBytes, subscriptionFields, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Patch is a PATCH body: a nil field is left as it is. A field sent as JSON
// null is reset to its zero value, which ApplyDefaults then turns into the
// default (as in RFC 7396 merge patch). Lists and headers are replaced, not
// merged.
type Patch struct {
	URL                *string            `json:"url,omitempty"`
	Description        *string            `json:"description,omitempty"`
	Tenant             *string            `json:"tenant,omitempty"`
	Topics             *[]string          `json:"topics,omitempty"`
	EventTypes         *[]string          `json:"event_types,omitempty"`
	Payload            *Payload           `json:"payload,omitempty"`
	ThinURLTemplate    *string            `json:"thin_url_template,omitempty"`
	SignatureScheme    *SignatureScheme   `json:"signature_scheme,omitempty"`
	Headers            *map[string]string `json:"headers,omitempty"`
	RateLimitPerSecond *int               `json:"rate_limit_per_second,omitempty"`
	MaxInFlight        *int               `json:"max_in_flight,omitempty"`
	TimeoutMS          *int               `json:"timeout_ms,omitempty"`
	MaxAttempts        *int               `json:"max_attempts,omitempty"`
	Status             *Status            `json:"status,omitempty"`
}

var patchFields = fieldDecoder[Patch]{
	"url":                   func(p *Patch, r json.RawMessage) error { return intoPtr(&p.URL, r) },
	"description":           func(p *Patch, r json.RawMessage) error { return intoPtr(&p.Description, r) },
	"tenant":                func(p *Patch, r json.RawMessage) error { return intoPtr(&p.Tenant, r) },
	"topics":                func(p *Patch, r json.RawMessage) error { return intoPtr(&p.Topics, r) },
	"event_types":           func(p *Patch, r json.RawMessage) error { return intoPtr(&p.EventTypes, r) },
	"payload":               func(p *Patch, r json.RawMessage) error { return intoPtr(&p.Payload, r) },
	"thin_url_template":     func(p *Patch, r json.RawMessage) error { return intoPtr(&p.ThinURLTemplate, r) },
	"signature_scheme":      func(p *Patch, r json.RawMessage) error { return intoPtr(&p.SignatureScheme, r) },
	"headers":               func(p *Patch, r json.RawMessage) error { return intoPtr(&p.Headers, r) },
	"rate_limit_per_second": func(p *Patch, r json.RawMessage) error { return intoPtr(&p.RateLimitPerSecond, r) },
	"max_in_flight":         func(p *Patch, r json.RawMessage) error { return intoPtr(&p.MaxInFlight, r) },
	"timeout_ms":            func(p *Patch, r json.RawMessage) error { return intoPtr(&p.TimeoutMS, r) },
	"max_attempts":          func(p *Patch, r json.RawMessage) error { return intoPtr(&p.MaxAttempts, r) },
	"status":                func(p *Patch, r json.RawMessage) error { return intoPtr(&p.Status, r) },
}

// DecodePatch reads a PATCH /v1/subscriptions/{id} body, as strictly as
// Decode.
func DecodePatch(r io.Reader, maxBytes int64) (*Patch, error) {
	p := new(Patch)
	if err := decodeStrict(r, maxBytes, patchFields, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Apply sets the fields p carries on s. It copies lists and maps, so s
// shares nothing with p. Apply does not validate; Store.Update does.
func (p *Patch) Apply(s *Subscription) {
	set(&s.URL, p.URL)
	set(&s.Description, p.Description)
	set(&s.Tenant, p.Tenant)
	if p.Topics != nil {
		s.Topics = slices.Clone(*p.Topics)
	}
	if p.EventTypes != nil {
		s.EventTypes = slices.Clone(*p.EventTypes)
	}
	set(&s.Payload, p.Payload)
	set(&s.ThinURLTemplate, p.ThinURLTemplate)
	set(&s.SignatureScheme, p.SignatureScheme)
	if p.Headers != nil {
		s.Headers = maps.Clone(*p.Headers)
	}
	set(&s.RateLimitPerSecond, p.RateLimitPerSecond)
	set(&s.MaxInFlight, p.MaxInFlight)
	set(&s.TimeoutMS, p.TimeoutMS)
	set(&s.MaxAttempts, p.MaxAttempts)
	set(&s.Status, p.Status)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func decodeStrict[T any](r io.Reader, maxBytes int64, fields fieldDecoder[T], dst *T) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBodyBytes
	}
	body, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return fmt.Errorf("subscription: reading body: %w", err)
	}
	if int64(len(body)) > maxBytes {
		return ErrTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var members map[string]json.RawMessage
	if err := dec.Decode(&members); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &FieldError{Message: "body must be a JSON object"}
		}
		return &FieldError{Message: "body is not valid JSON: " + err.Error()}
	}
	if members == nil {
		return &FieldError{Message: "body must be a JSON object"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &FieldError{Message: "body has data after the JSON object"}
	}
	// Sorted, so that with several bad fields the error is always the same.
	for _, name := range slices.Sorted(maps.Keys(members)) {
		decode, ok := fields[name]
		switch {
		case ok:
			if err := decode(dst, members[name]); err != nil {
				return &FieldError{Field: name, Message: err.Error()}
			}
		case readOnly[name]:
			return fieldErr(name, "is set by the server and cannot be given")
		default:
			return fieldErr(name, "is not a known field")
		}
	}
	return nil
}

// into decodes raw into dst; null leaves dst alone.
func into[T any](dst *T, raw json.RawMessage) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return typeError(dst, err)
	}
	return nil
}

// intoPtr decodes raw into a new *T; null gives a pointer to T's zero value,
// so that a patch can reset a field.
func intoPtr[T any](dst **T, raw json.RawMessage) error {
	v := new(T)
	if err := into(v, raw); err != nil {
		return err
	}
	*dst = v
	return nil
}

// typeError says what the field should have been, in JSON terms.
func typeError(dst any, err error) error {
	var want string
	switch reflect.TypeOf(dst).Elem().Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Int:
		want = "an integer"
	case reflect.Slice:
		want = "an array of strings"
	case reflect.Map:
		want = "an object whose values are strings"
	default:
		return err
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("must be %s, not %s", want, te.Value)
	}
	return fmt.Errorf("must be %s", want)
}
