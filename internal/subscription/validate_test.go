package subscription

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func valid() *Subscription {
	return &Subscription{
		URL:        "https://hooks.example.com/herald",
		Topics:     []string{"orders"},
		EventTypes: []string{"order.*"},
	}
}

func TestValidateAcceptsValid(t *testing.T) {
	cases := map[string]func(*Subscription){
		"minimal":          func(s *Subscription) { s.Topics, s.EventTypes = nil, nil },
		"http with port":   func(s *Subscription) { s.URL = "http://localhost:8080/hook?x=1" },
		"ipv6 host":        func(s *Subscription) { s.URL = "https://[::1]:8443/" },
		"every event type": func(s *Subscription) { s.EventTypes = []string{"*"} },
		"exact and prefix": func(s *Subscription) { s.EventTypes = []string{"order.created", "payment.*", "a.b.c.*"} },
		"thin": func(s *Subscription) {
			s.Payload, s.ThinURLTemplate = PayloadThin, "https://api.example.com/orders/{id}"
		},
		"thin id in query": func(s *Subscription) { s.Payload, s.ThinURLTemplate = PayloadThin, "https://api.example.com/o?id={id}" },
		"raw hex":          func(s *Subscription) { s.Payload, s.SignatureScheme = PayloadRaw, SchemeHex },
		"custom headers":   func(s *Subscription) { s.Headers = map[string]string{"X-Team": "billing", "Authorization": "Bearer t"} },
		"limits at maximum": func(s *Subscription) {
			s.RateLimitPerSecond, s.MaxInFlight, s.TimeoutMS, s.MaxAttempts = 100000, 1024, 60000, 50
		},
		"limits at minimum":  func(s *Subscription) { s.TimeoutMS = 100 },
		"paused":             func(s *Subscription) { s.Status = StatusPaused },
		"disabled":           func(s *Subscription) { s.Status = StatusDisabled },
		"long description":   func(s *Subscription) { s.Description = strings.Repeat("é", 1024) },
		"tenant of 128":      func(s *Subscription) { s.Tenant = strings.Repeat("t", 128) },
		"url of 2048 bytes":  func(s *Subscription) { s.URL = "https://a.example/" + strings.Repeat("p", 2048-18) },
		"topic with symbols": func(s *Subscription) { s.Topics = []string{"a.b_c-D9"} },
		"defaults applied":   func(s *Subscription) { ApplyDefaults(s) },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			s := valid()
			mod(s)
			if err := Validate(s); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	headers := func(n int) map[string]string {
		h := make(map[string]string, n)
		for i := range n {
			h[fmt.Sprintf("x-h%d", i)] = "v"
		}
		return h
	}
	cases := []struct {
		name  string
		mod   func(*Subscription)
		field string
	}{
		{"no url", func(s *Subscription) { s.URL = "" }, "url"},
		{"relative url", func(s *Subscription) { s.URL = "/hook" }, "url"},
		{"ftp url", func(s *Subscription) { s.URL = "ftp://example.com/x" }, "url"},
		{"no host", func(s *Subscription) { s.URL = "https:///path" }, "url"},
		{"opaque", func(s *Subscription) { s.URL = "https:example.com" }, "url"},
		{"port only", func(s *Subscription) { s.URL = "https://:443/" }, "url"},
		{"userinfo", func(s *Subscription) { s.URL = "https://user:pw@example.com/" }, "url"},
		{"user only", func(s *Subscription) { s.URL = "https://user@example.com/" }, "url"},
		{"unparseable", func(s *Subscription) { s.URL = "https://exa mple.com/" }, "url"},
		{"control char", func(s *Subscription) { s.URL = "https://example.com/\n" }, "url"},
		{"url too long", func(s *Subscription) { s.URL = "https://a.example/" + strings.Repeat("p", 2048) }, "url"},
		{"description too long", func(s *Subscription) { s.Description = strings.Repeat("d", 1025) }, "description"},
		{"tenant too long", func(s *Subscription) { s.Tenant = strings.Repeat("t", 129) }, "tenant"},
		{"tenant with newline", func(s *Subscription) { s.Tenant = "a\nb" }, "tenant"},
		{"empty topic", func(s *Subscription) { s.Topics = []string{""} }, "topics"},
		{"topic with space", func(s *Subscription) { s.Topics = []string{"my topic"} }, "topics"},
		{"topic too long", func(s *Subscription) { s.Topics = []string{strings.Repeat("t", 250)} }, "topics"},
		{"duplicate topic", func(s *Subscription) { s.Topics = []string{"a", "a"} }, "topics"},
		{"too many topics", func(s *Subscription) { s.Topics = many(101, func(i int) string { return fmt.Sprint("t", i) }) }, "topics"},
		{"empty event type", func(s *Subscription) { s.EventTypes = []string{""} }, "event_types"},
		{"star without dot", func(s *Subscription) { s.EventTypes = []string{"order*"} }, "event_types"},
		{"leading star", func(s *Subscription) { s.EventTypes = []string{"*.created"} }, "event_types"},
		{"middle star", func(s *Subscription) { s.EventTypes = []string{"a.*.b"} }, "event_types"},
		{"double star", func(s *Subscription) { s.EventTypes = []string{"a.**"} }, "event_types"},
		{"two wild segments", func(s *Subscription) { s.EventTypes = []string{"a.*.*"} }, "event_types"},
		{"empty prefix", func(s *Subscription) { s.EventTypes = []string{".*"} }, "event_types"},
		{"space in type", func(s *Subscription) { s.EventTypes = []string{"order created"} }, "event_types"},
		{"duplicate type", func(s *Subscription) { s.EventTypes = []string{"a", "a"} }, "event_types"},
		{"too many types", func(s *Subscription) { s.EventTypes = many(101, func(i int) string { return fmt.Sprint("e", i) }) }, "event_types"},
		{"unknown payload", func(s *Subscription) { s.Payload = "full" }, "payload"},
		{"thin without template", func(s *Subscription) { s.Payload = PayloadThin }, "thin_url_template"},
		{"template without id", func(s *Subscription) {
			s.Payload, s.ThinURLTemplate = PayloadThin, "https://api.example.com/orders"
		}, "thin_url_template"},
		{"relative template", func(s *Subscription) { s.Payload, s.ThinURLTemplate = PayloadThin, "/orders/{id}" }, "thin_url_template"},
		{"template with userinfo", func(s *Subscription) {
			s.Payload, s.ThinURLTemplate = PayloadThin, "https://u:p@api.example.com/{id}"
		}, "thin_url_template"},
		{"unknown scheme", func(s *Subscription) { s.SignatureScheme = "sha1" }, "signature_scheme"},
		{"header name with space", func(s *Subscription) { s.Headers = map[string]string{"x team": "v"} }, "headers"},
		{"header name with colon", func(s *Subscription) { s.Headers = map[string]string{"x-team:": "v"} }, "headers"},
		{"empty header name", func(s *Subscription) { s.Headers = map[string]string{"": "v"} }, "headers"},
		{"header value CR", func(s *Subscription) { s.Headers = map[string]string{"x-a": "v\rw"} }, "headers"},
		{"header value LF", func(s *Subscription) { s.Headers = map[string]string{"x-a": "v\nx-b: w"} }, "headers"},
		{"header value NUL", func(s *Subscription) { s.Headers = map[string]string{"x-a": "v\x00"} }, "headers"},
		{"same header twice", func(s *Subscription) { s.Headers = map[string]string{"X-A": "1", "x-a": "2"} }, "headers"},
		{"too many headers", func(s *Subscription) { s.Headers = headers(33) }, "headers"},
		{"rate below 0", func(s *Subscription) { s.RateLimitPerSecond = -1 }, "rate_limit_per_second"},
		{"rate above max", func(s *Subscription) { s.RateLimitPerSecond = 100001 }, "rate_limit_per_second"},
		{"in flight below 0", func(s *Subscription) { s.MaxInFlight = -1 }, "max_in_flight"},
		{"in flight above max", func(s *Subscription) { s.MaxInFlight = 1025 }, "max_in_flight"},
		{"timeout too short", func(s *Subscription) { s.TimeoutMS = 99 }, "timeout_ms"},
		{"timeout negative", func(s *Subscription) { s.TimeoutMS = -1 }, "timeout_ms"},
		{"timeout too long", func(s *Subscription) { s.TimeoutMS = 60001 }, "timeout_ms"},
		{"attempts below 0", func(s *Subscription) { s.MaxAttempts = -1 }, "max_attempts"},
		{"attempts above max", func(s *Subscription) { s.MaxAttempts = 51 }, "max_attempts"},
		{"unknown status", func(s *Subscription) { s.Status = "deleted" }, "status"},
	}
	for _, h := range []string{
		"webhook-id", "Webhook-Signature", "webhook-anything", "Content-Type", "content-length",
		"Host", "User-Agent", "traceparent", "tracestate", "X-Signature", "X-Webhook-Timestamp",
		"X-Webhook-Delivery-ID", "Transfer-Encoding", "Connection", "Proxy-Authorization",
	} {
		cases = append(cases, struct {
			name  string
			mod   func(*Subscription)
			field string
		}{"reserved header " + h, func(s *Subscription) { s.Headers = map[string]string{h: "v"} }, "headers"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := valid()
			c.mod(s)
			err := Validate(s)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a *FieldError", err)
			}
			if fe.Field != c.field {
				t.Fatalf("FieldError.Field = %q (%v), want %q", fe.Field, fe, c.field)
			}
			if fe.Message == "" || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error %q does not explain itself", err)
			}
		})
	}
}

func TestApplyDefaults(t *testing.T) {
	s := &Subscription{URL: "https://example.com"}
	ApplyDefaults(s)
	if s.Payload != PayloadEnvelope || s.SignatureScheme != SchemeStandard || s.Status != StatusActive {
		t.Errorf("enums = %q %q %q, want envelope standard active", s.Payload, s.SignatureScheme, s.Status)
	}
	if s.MaxInFlight != DefaultMaxInFlight || s.MaxAttempts != DefaultMaxAttempts || s.TimeoutMS != 10000 {
		t.Errorf("limits = %d %d %d, want %d %d 10000", s.MaxInFlight, s.MaxAttempts, s.TimeoutMS, DefaultMaxInFlight, DefaultMaxAttempts)
	}
	if s.Topics == nil || s.EventTypes == nil {
		t.Error("empty lists stay nil; they should be [] in JSON")
	}
	if s.RateLimitPerSecond != 0 {
		t.Errorf("rate limit = %d, want 0 (unlimited)", s.RateLimitPerSecond)
	}

	set := &Subscription{Payload: PayloadRaw, SignatureScheme: SchemeHex, Status: StatusPaused, MaxInFlight: 2, MaxAttempts: 3, TimeoutMS: 500}
	want := *set
	ApplyDefaults(set)
	if set.Payload != want.Payload || set.SignatureScheme != want.SignatureScheme || set.Status != want.Status ||
		set.MaxInFlight != 2 || set.MaxAttempts != 3 || set.TimeoutMS != 500 {
		t.Errorf("ApplyDefaults overwrote set fields: %+v", set)
	}
}
