package delivery

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/pkg/webhook"
)

var (
	testNow   = time.Date(2024, 5, 1, 12, 0, 30, 0, time.UTC)
	testKey   = bytes.Repeat([]byte{0x11}, 32)
	oldKey    = bytes.Repeat([]byte{0x22}, 32)
	expiredKy = bytes.Repeat([]byte{0x33}, 32)
)

func secretString(key []byte) string {
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

func testEvent(value string) *event.Event {
	return &event.Event{
		ID:    "orders/0/42",
		Type:  "order.created",
		Time:  time.Date(2024, 5, 1, 12, 0, 0, 123_000_000, time.UTC),
		Topic: "orders",
		Value: []byte(value),
	}
}

func testSub() *subscription.Subscription {
	return &subscription.Subscription{
		ID:      "sub_1",
		URL:     "https://hooks.example.com/in",
		Secrets: []subscription.Secret{{Key: testKey}},
	}
}

func mustBuild(t *testing.T, ev *event.Event, sub *subscription.Subscription) *Request {
	t.Helper()
	req, err := Build(ev, sub, "msg_test", testNow)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return req
}

func TestBuildEnvelope(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  string
	}{
		{"json object", `{"id":"ord_1","total":12.5}`,
			`{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":{"id":"ord_1","total":12.5}}`},
		{"json kept verbatim, not re-encoded", `{"b":1,  "a":[1,2.50,"\u00e9"]}`,
			`{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":{"b":1,  "a":[1,2.50,"\u00e9"]}}`},
		{"surrounding whitespace trimmed", "\n {\"a\":1}\r\n",
			`{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":{"a":1}}`},
		{"json scalar", `"just a string"`,
			`{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":"just a string"}`},
		{"not json becomes base64", "plain \x00\xff text",
			`{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":"` +
				base64.StdEncoding.EncodeToString([]byte("plain \x00\xff text")) + `"}`},
		{"truncated json becomes base64", `{"a":`,
			`{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":"eyJhIjo="}`},
		{"empty value is null", "",
			`{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := mustBuild(t, testEvent(tt.value), testSub())
			if got := string(req.Body); got != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid(req.Body) {
				t.Errorf("body is not valid JSON")
			}
			if ct := req.Header.Get("content-type"); ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
		})
	}
}

func TestBuildEnvelopeEscapesTypeAndUsesUTC(t *testing.T) {
	ev := testEvent(`{}`)
	ev.Type = "odd \"type\"\n\t\\ \x01 \xff \u2028 é"
	ev.Time = time.Date(2024, 5, 1, 14, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	req := mustBuild(t, ev, testSub())

	var got struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(req.Body, &got); err != nil {
		t.Fatalf("body %s: %v", req.Body, err)
	}
	if want := "odd \"type\"\n\t\\ \x01 \uFFFD \u2028 é"; got.Type != want {
		t.Errorf("type = %q, want %q", got.Type, want)
	}
	if got.Timestamp != "2024-05-01T12:00:00Z" {
		t.Errorf("timestamp = %q, want UTC", got.Timestamp)
	}
	if !bytes.Contains(req.Body, []byte(`\u2028`)) {
		t.Errorf("U+2028 not escaped: %s", req.Body)
	}
}

func TestBuildRaw(t *testing.T) {
	tests := []struct {
		name, value, contentType, want string
	}{
		{"event content type wins", `{"a":1}`, "application/cloudevents+json", "application/cloudevents+json"},
		{"json", `{"a":1}`, "", "application/json"},
		{"binary", "\x00\x01\x02", "", "application/octet-stream"},
		{"empty", "", "", "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := testEvent(tt.value)
			ev.ContentType = tt.contentType
			sub := testSub()
			sub.Payload = subscription.PayloadRaw
			req := mustBuild(t, ev, sub)
			if !bytes.Equal(req.Body, ev.Value) {
				t.Errorf("body = %q, want the value %q", req.Body, ev.Value)
			}
			if got := req.Header.Get("content-type"); got != tt.want {
				t.Errorf("content-type = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuildThin(t *testing.T) {
	const head = `{"type":"order.created","timestamp":"2024-05-01T12:00:00.123Z","data":`
	tests := []struct {
		name, value, want string
	}{
		{"string id, path-escaped", `{"id":"a/b c?","big":"…"}`,
			head + `{"id":"a/b c?","url":"https://api.example.com/orders/a%2Fb%20c%3F"}}`},
		{"numeric id", `{"total":3,"id":42}`,
			head + `{"id":"42","url":"https://api.example.com/orders/42"}}`},
		{"no id field: event id", `{"order":"x"}`,
			head + `{"id":"orders/0/42","url":"https://api.example.com/orders/orders%2F0%2F42"}}`},
		{"object id: event id", `{"id":{"x":1}}`,
			head + `{"id":"orders/0/42","url":"https://api.example.com/orders/orders%2F0%2F42"}}`},
		{"not json: event id", `id=7`,
			head + `{"id":"orders/0/42","url":"https://api.example.com/orders/orders%2F0%2F42"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := testSub()
			sub.Payload = subscription.PayloadThin
			sub.ThinURLTemplate = "https://api.example.com/orders/{id}"
			req := mustBuild(t, testEvent(tt.value), sub)
			if got := string(req.Body); got != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
			if ct := req.Header.Get("content-type"); ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
		})
	}

	t.Run("no template", func(t *testing.T) {
		sub := testSub()
		sub.Payload = subscription.PayloadThin
		if _, err := Build(testEvent(`{}`), sub, "msg_test", testNow); err == nil {
			t.Fatal("Build without thin_url_template succeeded")
		}
	})
}

func TestBuildHeaders(t *testing.T) {
	sub := testSub()
	sub.TimeoutMS = 2500
	req := mustBuild(t, testEvent(`{}`), sub)
	want := map[string]string{
		"content-type":      "application/json",
		"user-agent":        "herald/" + Version,
		"webhook-id":        "msg_test",
		"webhook-timestamp": "1714564830",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if req.URL != sub.URL {
		t.Errorf("URL = %q", req.URL)
	}
	if req.Timeout != 2500*time.Millisecond {
		t.Errorf("Timeout = %v", req.Timeout)
	}
	if len(req.Header) != 5 {
		t.Errorf("headers = %v, want exactly 5", req.Header)
	}
}

func TestBuildSignatureVerifies(t *testing.T) {
	sub := testSub()
	req := mustBuild(t, testEvent(`{"a":1}`), sub)
	v, err := webhook.NewVerifier(secretString(testKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.With(webhook.WithClock(func() time.Time { return testNow })).Verify(req.Header, req.Body); err != nil {
		t.Fatalf("Verify: %v (signature %q)", err, req.Header.Get("webhook-signature"))
	}
	if err := v.With(webhook.WithClock(func() time.Time { return testNow })).Verify(req.Header, append(req.Body, ' ')); err == nil {
		t.Fatal("a changed body verified")
	}
}

func TestBuildSignsWithEveryUnexpiredKey(t *testing.T) {
	for _, kept := range []bool{false, true} {
		t.Run(map[bool]string{false: "literal secrets", true: "NewSecret"}[kept], func(t *testing.T) {
			sub := testSub()
			sub.Secrets = []subscription.Secret{
				{Key: testKey},
				{Key: oldKey, ExpiresAt: testNow.Add(time.Hour)},
				{Key: expiredKy, ExpiresAt: testNow.Add(-time.Second)},
			}
			if kept {
				for i, sec := range sub.Secrets {
					sub.Secrets[i] = subscription.NewSecret(sec.Key, sec.ExpiresAt)
				}
			}
			// Twice: a kept HMAC signs again after its first signature.
			mustBuild(t, testEvent(`{"a":1}`), sub)
			checkEveryUnexpiredKey(t, mustBuild(t, testEvent(`{"a":1}`), sub))
		})
	}
}

func checkEveryUnexpiredKey(t *testing.T, req *Request) {
	t.Helper()
	sigs := strings.Fields(req.Header.Get("webhook-signature"))
	if len(sigs) != 2 {
		t.Fatalf("signatures = %q, want two (current and rotated-out)", sigs)
	}
	for i, key := range [][]byte{testKey, oldKey} {
		if want := webhook.Sign(key, "msg_test", testNow, req.Body); sigs[i] != want {
			t.Errorf("signature %d = %q, want %q", i, sigs[i], want)
		}
		v, _ := webhook.NewVerifier(secretString(key))
		if err := v.With(webhook.WithClock(func() time.Time { return testNow })).Verify(req.Header, req.Body); err != nil {
			t.Errorf("receiver holding only key %d: %v", i, err)
		}
	}
	v, _ := webhook.NewVerifier(secretString(expiredKy))
	if err := v.With(webhook.WithClock(func() time.Time { return testNow })).Verify(req.Header, req.Body); err == nil {
		t.Error("the expired key still verifies")
	}
}

func TestBuildEd25519(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	sub := testSub()
	sub.SigningKey = priv
	req := mustBuild(t, testEvent(`{"a":1}`), sub)

	sigs := strings.Fields(req.Header.Get("webhook-signature"))
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1a,") {
		t.Fatalf("signatures = %q, want v1 then v1a", sigs)
	}
	pub := webhook.PublicKeyPrefix + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	v, err := webhook.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.With(webhook.WithClock(func() time.Time { return testNow })).Verify(req.Header, req.Body); err != nil {
		t.Fatalf("public-key receiver: %v", err)
	}

	// An ed25519 key alone is enough to sign.
	sub.Secrets = nil
	req = mustBuild(t, testEvent(`{"a":1}`), sub)
	if sig := req.Header.Get("webhook-signature"); !strings.HasPrefix(sig, "v1a,") || strings.Contains(sig, " ") {
		t.Errorf("signature = %q, want one v1a", sig)
	}
}

func TestBuildWithoutKeysFails(t *testing.T) {
	for _, scheme := range []subscription.SignatureScheme{subscription.SchemeStandard, subscription.SchemeHex} {
		sub := testSub()
		sub.SignatureScheme = scheme
		sub.Secrets = []subscription.Secret{{Key: oldKey, ExpiresAt: testNow.Add(-time.Minute)}}
		if _, err := Build(testEvent(`{}`), sub, "msg_test", testNow); err == nil {
			t.Errorf("%s: Build with only expired keys succeeded; it must never send unsigned", scheme)
		}
	}
}

func TestBuildHexScheme(t *testing.T) {
	sub := testSub()
	sub.SignatureScheme = subscription.SchemeHex
	sub.Secrets = []subscription.Secret{{Key: testKey}, {Key: oldKey, ExpiresAt: testNow.Add(time.Hour)}}
	req := mustBuild(t, testEvent(`{"a":1}`), sub)

	if got := req.Header.Get(webhook.HeaderHexDeliveryID); got != "msg_test" {
		t.Errorf("%s = %q", webhook.HeaderHexDeliveryID, got)
	}
	if got := req.Header.Get(webhook.HeaderHexTimestamp); got != "1714564830" {
		t.Errorf("%s = %q", webhook.HeaderHexTimestamp, got)
	}
	if got, want := req.Header.Get(webhook.HeaderHexSignature), webhook.SignHex(testKey, req.Body); got != want {
		t.Errorf("%s = %q, want %q", webhook.HeaderHexSignature, got, want)
	}
	if err := webhook.VerifyHex(testKey, req.Header, req.Body); err != nil {
		t.Errorf("VerifyHex with the newest key: %v", err)
	}
	if err := webhook.VerifyHex(oldKey, req.Header, req.Body); err == nil {
		t.Error("hex signature made with the old key; want the newest")
	}
	for _, h := range []string{webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature} {
		if req.Header.Get(h) != "" {
			t.Errorf("hex scheme sent %s", h)
		}
	}
}

func TestBuildCustomHeadersCannotOverride(t *testing.T) {
	sub := testSub()
	sub.Headers = map[string]string{
		"x-team":            "billing",
		"Authorization":     "Bearer abc",
		"webhook-signature": "v1,forged",
		"Webhook-Id":        "msg_forged",
		"content-type":      "text/plain",
		"User-Agent":        "evil",
		"traceparent":       "00-00000000000000000000000000000001-0000000000000001-01",
		"host":              "internal",
		"x-signature":       "forged",
		"content-length":    "1",
		"webhook-future":    "x",
	}
	req := mustBuild(t, testEvent(`{}`), sub)
	clean := mustBuild(t, testEvent(`{}`), testSub())

	if got := req.Header.Get("x-team"); got != "billing" {
		t.Errorf("x-team = %q", got)
	}
	if got := req.Header.Get("authorization"); got != "Bearer abc" {
		t.Errorf("authorization = %q", got)
	}
	for k, v := range clean.Header {
		if got := req.Header.Values(k); len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s = %q, want herald's %q", k, got, v)
		}
	}
	if len(req.Header) != len(clean.Header)+2 {
		t.Errorf("headers = %v; reserved custom headers must be dropped", req.Header)
	}
}

func TestBuildRefusesUnsendableHeaders(t *testing.T) {
	for name, value := range map[string]string{
		"x-a":        "ok\r\nx-injected: 1",
		"x-b":        "nul\x00",
		"bad header": "v",
		"x-c\r\nx-d": "v",
		"":           "v",
	} {
		sub := testSub()
		sub.Headers = map[string]string{name: value}
		if _, err := Build(testEvent(`{}`), sub, "msg_test", testNow); err == nil {
			t.Errorf("header %q: %q accepted", name, value)
		}
	}
}

func TestBuildRejectsUnknownModes(t *testing.T) {
	sub := testSub()
	sub.Payload = "xml"
	if _, err := Build(testEvent(`{}`), sub, "msg_test", testNow); err == nil {
		t.Error("unknown payload accepted")
	}
	sub = testSub()
	sub.SignatureScheme = "md5"
	if _, err := Build(testEvent(`{}`), sub, "msg_test", testNow); err == nil {
		t.Error("unknown signature scheme accepted")
	}
}

func benchValue() []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":"ord_123","items":[`)
	for b.Len() < 1000 {
		b.WriteString(`{"sku":"sku-1","qty":1},`)
	}
	b.WriteString(`{"sku":"last","qty":2}]}`)
	return b.Bytes()
}

func BenchmarkBuild(b *testing.B) {
	ev := testEvent("")
	ev.Value = benchValue()
	sub := testSub()
	b.SetBytes(int64(len(ev.Value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(ev, sub, "msg_test", testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeBody(b *testing.B) {
	ev := testEvent("")
	ev.Value = benchValue()
	b.SetBytes(int64(len(ev.Value)))
	b.ReportAllocs()
	for b.Loop() {
		envelopeBody(ev)
	}
}

func TestEnvelopeBodyAllocatesOnlyTheBody(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	ev := testEvent("")
	ev.Value = benchValue()
	if n := testing.AllocsPerRun(100, func() { envelopeBody(ev) }); n != 1 {
		t.Errorf("envelopeBody allocates %v times, want 1 (the body)", n)
	}
	ev.Value = []byte("plain text \xff")
	if n := testing.AllocsPerRun(100, func() { envelopeBody(ev) }); n != 1 {
		t.Errorf("base64 envelopeBody allocates %v times, want 1", n)
	}
}

// writeDiscard is a connection that takes every write.
type writeDiscard struct{ net.Conn }

func (writeDiscard) Write(p []byte) (int, error) { return len(p), nil }

// TestWriteRequestAllocations pins what writing a request allocates: the
// header names are sorted in place, with nothing per header.
func TestWriteRequestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	ev := testEvent("")
	ev.Value = benchValue()
	req, err := Build(ev, testSub(), "msg_test", testNow)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(WithPropagators(propagation.TraceContext{}))
	tg, err := c.target("http://127.0.0.1:9/hook")
	if err != nil {
		t.Fatal(err)
	}
	pc := newPconn(writeDiscard{}, tg.key)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.writeRequest(ctx, pc, &tg, req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("writing a request with %d headers allocates %.0f times, want 0", len(req.Header), allocs)
	}
}
