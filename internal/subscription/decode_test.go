package subscription

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	body := `{
		"url": "https://hooks.example.com/x", "description": "billing", "tenant": "acme",
		"topics": ["orders"], "event_types": ["order.*"], "payload": "thin",
		"thin_url_template": "https://api.example.com/orders/{id}", "signature_scheme": "hex",
		"headers": {"x-team": "billing"}, "rate_limit_per_second": 50, "max_in_flight": 16,
		"timeout_ms": 10000, "max_attempts": 10, "status": "paused"
	}`
	s, err := Decode(strings.NewReader(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &Subscription{
		URL: "https://hooks.example.com/x", Description: "billing", Tenant: "acme",
		Topics: []string{"orders"}, EventTypes: []string{"order.*"}, Payload: PayloadThin,
		ThinURLTemplate: "https://api.example.com/orders/{id}", SignatureScheme: SchemeHex,
		Headers: map[string]string{"x-team": "billing"}, RateLimitPerSecond: 50, MaxInFlight: 16,
		TimeoutMS: 10000, MaxAttempts: 10, Status: StatusPaused,
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("Decode =\n%+v\nwant\n%+v", s, want)
	}
	if err := Validate(s); err != nil {
		t.Fatalf("the DESIGN.md example does not validate: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name, body, field, msg string
	}{
		{"unknown field", `{"url": "https://x.example", "colour": "red"}`, "colour", "not a known field"},
		{"field in other case", `{"URL": "https://x.example"}`, "URL", "not a known field"},
		{"secret", `{"url": "https://x.example", "secret": "whsec_abc"}`, "secret", "not a known field"},
		{"server-owned id", `{"id": "sub_x", "url": "https://x.example"}`, "id", "set by the server"},
		{"server-owned version", `{"url": "https://x.example", "version": 3}`, "version", "set by the server"},
		{"url as number", `{"url": 5}`, "url", "must be a string, not number"},
		{"topics as string", `{"topics": "orders"}`, "topics", "must be an array of strings, not string"},
		{"topics with number", `{"topics": ["a", 1]}`, "topics", "must be an array of strings"},
		{"headers as array", `{"headers": ["a"]}`, "headers", "must be an object"},
		{"header value number", `{"headers": {"x-a": 1}}`, "headers", "must be an object whose values are strings"},
		{"fraction", `{"timeout_ms": 1.5}`, "timeout_ms", "must be an integer"},
		{"integer as string", `{"max_attempts": "10"}`, "max_attempts", "must be an integer, not string"},
		{"status as bool", `{"status": true}`, "status", "must be a string, not bool"},
		{"not an object", `["https://x.example"]`, "", "must be a JSON object"},
		{"null body", `null`, "", "must be a JSON object"},
		{"empty body", ``, "", "not valid JSON"},
		{"syntax", `{"url": "https://x.example",}`, "", "not valid JSON"},
		{"trailing object", `{"url": "https://x.example"} {"url": "https://y.example"}`, "", "data after"},
		{"trailing garbage", `{"url": "https://x.example"} x`, "", "data after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(c.body), 0)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode = %v, want a *FieldError", err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Message, c.msg) {
				t.Fatalf("FieldError = {%q, %q}, want {%q, …%s…}", fe.Field, fe.Message, c.field, c.msg)
			}
		})
	}
}

func TestDecodeErrorIsStableWithSeveralBadFields(t *testing.T) {
	for range 20 {
		_, err := Decode(strings.NewReader(`{"zz": 1, "aa": 2, "url": 3}`), 0)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "aa" {
			t.Fatalf("Decode = %v, want the first bad field by name, aa", err)
		}
	}
}

func TestDecodeTooLarge(t *testing.T) {
	body := `{"url": "https://x.example", "description": "` + strings.Repeat("d", 100) + `"}`
	if _, err := Decode(strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("body of exactly maxBytes: %v", err)
	}
	if _, err := Decode(strings.NewReader(body), int64(len(body)-1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("body over maxBytes: err = %v, want ErrTooLarge", err)
	}
	big := `{"description": "` + strings.Repeat("d", DefaultMaxBodyBytes) + `"}`
	if _, err := Decode(strings.NewReader(big), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("maxBytes 0 does not apply DefaultMaxBodyBytes: err = %v", err)
	}
}

func TestPatch(t *testing.T) {
	s := &Subscription{
		URL: "https://old.example", Description: "keep me", Tenant: "acme",
		Topics: []string{"orders"}, EventTypes: []string{"order.*"},
		Headers: map[string]string{"x-a": "1"}, MaxAttempts: 7, TimeoutMS: 500, Status: StatusActive,
	}
	p, err := DecodePatch(strings.NewReader(`{
		"url": "https://new.example", "topics": [], "headers": {"x-b": "2"},
		"timeout_ms": null, "tenant": null, "status": "paused"
	}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	p.Apply(s)
	if s.URL != "https://new.example" || s.Status != StatusPaused {
		t.Errorf("set fields not applied: %+v", s)
	}
	if s.Description != "keep me" || s.MaxAttempts != 7 || !reflect.DeepEqual(s.EventTypes, []string{"order.*"}) {
		t.Errorf("absent fields changed: %+v", s)
	}
	if len(s.Topics) != 0 {
		t.Errorf("topics = %v, want [] (all topics)", s.Topics)
	}
	if !reflect.DeepEqual(s.Headers, map[string]string{"x-b": "2"}) {
		t.Errorf("headers = %v, want replaced by {x-b: 2}", s.Headers)
	}
	if s.TimeoutMS != 0 || s.Tenant != "" {
		t.Errorf("null did not reset: timeout_ms=%d tenant=%q", s.TimeoutMS, s.Tenant)
	}
	ApplyDefaults(s)
	if s.TimeoutMS != 10000 {
		t.Errorf("reset timeout_ms did not get the default: %d", s.TimeoutMS)
	}

	(*p.Headers)["x-c"] = "3"
	if _, ok := s.Headers["x-c"]; ok {
		t.Error("Apply shares the patch's headers map with the subscription")
	}
}

func TestDecodePatchRejects(t *testing.T) {
	cases := []struct{ body, field string }{
		{`{"id": "sub_x"}`, "id"},
		{`{"created_at": "2024-01-01T00:00:00Z"}`, "created_at"},
		{`{"secret": "x"}`, "secret"},
		{`{"nope": 1}`, "nope"},
		{`{"max_in_flight": "4"}`, "max_in_flight"},
		{`{"event_types": {"a": "b"}}`, "event_types"},
		{`{} {}`, ""},
	}
	for _, c := range cases {
		_, err := DecodePatch(strings.NewReader(c.body), 0)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("DecodePatch(%s) = %v, want a FieldError on %q", c.body, err, c.field)
		}
	}
}

func TestEmptyPatchChangesNothing(t *testing.T) {
	p, err := DecodePatch(strings.NewReader(`{}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	s := valid()
	ApplyDefaults(s)
	before := *s
	p.Apply(s)
	if !reflect.DeepEqual(*s, before) {
		t.Errorf("empty patch changed %+v into %+v", before, *s)
	}
}
