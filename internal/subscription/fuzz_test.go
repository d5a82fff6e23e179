package subscription

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// decodeErr fails t unless err is what Decode and DecodePatch promise: nil,
// ErrTooLarge, or a *FieldError with a message.
func decodeErr(t *testing.T, err error) {
	t.Helper()
	if err == nil || errors.Is(err, ErrTooLarge) {
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %T %v, want *FieldError or ErrTooLarge", err, err)
	}
	if fe.Message == "" {
		t.Fatalf("FieldError without a message: %+v", fe)
	}
}

// clientJSON is s as a client would send it back: its JSON form without the
// fields the server owns.
func clientJSON(t *testing.T, s *Subscription) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal %+v: %v", s, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k := range readOnly {
		delete(m, k)
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecode feeds arbitrary bodies to Decode, as POST /v1/subscriptions
// does. It must never panic, must fail only with the documented errors, and
// what it accepts must survive a round trip through its own JSON form.
// Validate must not panic on whatever Decode lets through.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"url":"https://example.com/hook","topics":["orders"],"event_types":["order.*"]}`))
	f.Add([]byte(`{"url":"https://example.com/hook","headers":{"x-team":"billing"},"timeout_ms":5000,"payload":"thin","thin_url_template":"https://api.example.com/o/{id}"}`))
	f.Add([]byte(`{"url":1}`))
	f.Add([]byte(`{"id":"sub_x"}`))
	f.Add([]byte(`{"url":"https://e.com"} {}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Add([]byte(`{"headers":{"x":"a\r\nInjected: 1"}}`))
	f.Add([]byte("{\"description\":\"\xff\xfe\"}"))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Decode(bytes.NewReader(body), 4<<10)
		decodeErr(t, err)
		if err != nil {
			if s != nil {
				t.Fatalf("Decode returned %+v with error %v", s, err)
			}
			return
		}
		again, err := Decode(bytes.NewReader(clientJSON(t, s)), 0)
		if err != nil {
			t.Fatalf("Decode refuses its own output %s: %v", clientJSON(t, s), err)
		}
		if a, b := clientJSON(t, s), clientJSON(t, again); !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the subscription:\n%s\n%s", a, b)
		}
		ApplyDefaults(s)
		if err := Validate(s); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate error %T %v, want *FieldError", err, err)
			}
			return
		}
		for name, v := range s.Headers {
			if strings.ContainsAny(name+v, "\r\n\x00") {
				t.Fatalf("Validate accepted header %q: %q", name, v)
			}
		}
	})
}

// FuzzDecodePatch feeds arbitrary bodies to DecodePatch, as PATCH does, and
// applies what it accepts to a valid subscription: no panic, documented
// errors only, and the result shares nothing with the patch.
func FuzzDecodePatch(f *testing.F) {
	f.Add([]byte(`{"url":"https://example.com/new"}`))
	f.Add([]byte(`{"topics":null,"event_types":["a.*","a.b"],"headers":{"x-a":"1"}}`))
	f.Add([]byte(`{"status":"paused","max_attempts":3}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"headers":{"x":"\u0000"}}`))
	f.Add([]byte(`{"timeout_ms":1e400}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePatch(bytes.NewReader(body), 4<<10)
		decodeErr(t, err)
		if err != nil {
			return
		}
		s := &Subscription{ID: "sub_fuzz", URL: "https://example.com/hook", Topics: []string{"orders"}, EventTypes: []string{"order.*"}}
		ApplyDefaults(s)
		if err := Validate(s); err != nil {
			t.Fatalf("base subscription invalid: %v", err)
		}
		p.Apply(s)
		before := clientJSON(t, s)
		if p.Topics != nil && len(*p.Topics) > 0 {
			(*p.Topics)[0] = "changed-after-apply"
		}
		if p.EventTypes != nil && len(*p.EventTypes) > 0 {
			(*p.EventTypes)[0] = "changed-after-apply"
		}
		if p.Headers != nil && *p.Headers != nil {
			(*p.Headers)["x-changed-after-apply"] = "1"
		}
		if after := clientJSON(t, s); !bytes.Equal(before, after) {
			t.Fatalf("changing the patch after Apply changed the subscription:\n%s\n%s", before, after)
		}
		ApplyDefaults(s)
		_ = Validate(s)
	})
}

// matches is the event-type rule of DESIGN.md, written plainly: "*" takes
// everything, "<prefix>.*" every type under prefix, anything else itself.
func matches(patterns []string, eventType string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if p == "*" || p == eventType {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(eventType, prefix+".") {
			return true
		}
	}
	return false
}

// patternList splits s on commas into the patterns validation accepts.
func patternList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if checkPattern(p) == "" {
			out = append(out, p)
		}
	}
	return out
}

// FuzzIndex checks Index.Match against the plain rule (matches) for two
// subscriptions, one on a topic and one on every topic: each is returned
// exactly when the rule says, and never twice; after Remove, nothing is.
func FuzzIndex(f *testing.F) {
	f.Add("order.*,order.created", "*", "order.created", true)
	f.Add("order.*,order.item.*", "payment.failed", "order.item.created", true)
	f.Add("a..*", "a.b", "a..b", false)
	f.Add("order.*", "", "order", true)
	f.Add("order.*", "order.*,order.*", "order.", false)
	f.Add("x.y.z", "x.*,x.y.*", "x.y.z", true)
	f.Fuzz(func(t *testing.T, types1, types2, eventType string, sameTopic bool) {
		x := NewIndex()
		onTopic := &Subscription{ID: "sub_topic", Topics: []string{"orders", "orders"}, EventTypes: patternList(types1)}
		anyTopic := &Subscription{ID: "sub_any", EventTypes: patternList(types2)}
		x.Add(onTopic)
		x.Add(anyTopic)
		x.Add(onTopic) // replacing must not file it twice
		topic := "orders"
		if !sameTopic {
			topic = "payments"
		}
		got := x.Match(topic, eventType)
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		slices.Sort(ids)
		var want []string
		if matches(anyTopic.EventTypes, eventType) {
			want = append(want, anyTopic.ID)
		}
		if sameTopic && matches(onTopic.EventTypes, eventType) {
			want = append(want, onTopic.ID)
		}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Fatalf("Match(%q, %q) with %q on orders and %q on every topic = %v, want %v",
				topic, eventType, onTopic.EventTypes, anyTopic.EventTypes, ids, want)
		}
		x.Remove(onTopic.ID)
		x.Remove(anyTopic.ID)
		if got := x.Match(topic, eventType); len(got) != 0 || x.Len() != 0 {
			t.Fatalf("after Remove: Match = %v, Len = %d", got, x.Len())
		}
	})
}
