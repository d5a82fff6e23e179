package webhook_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/herald-dev/herald/pkg/webhook"
)

func TestSignHex(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		body string
		want string
	}{
		// RFC 4231, test case 2.
		{name: "rfc 4231", key: []byte("Jefe"), body: "what do ya want for nothing?",
			want: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		// Computed with openssl dgst -sha256 -mac HMAC over the spec body.
		{name: "spec secret", key: mustSecret(t, specSecret), body: specBody,
			want: "e2cb4f5251572539d458bfb8a7adb533b08801e6a794467e06f771debbb0818b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.SignHex(tt.key, []byte(tt.body)); got != tt.want {
				t.Errorf("SignHex = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestVerifyHex(t *testing.T) {
	key := mustSecret(t, specSecret)
	sig := webhook.SignHex(key, []byte(specBody))
	tests := []struct {
		name   string
		header map[string]string
		body   string
		want   error
	}{
		{name: "valid", header: map[string]string{"X-Signature": sig}},
		{name: "upper-case hex", header: map[string]string{"X-Signature": strings.ToUpper(sig)}},
		{name: "github prefix", header: map[string]string{"X-Signature": "sha256=" + sig}},
		{name: "lower-case header name", header: map[string]string{"x-signature": sig}},
		{name: "tampered body", header: map[string]string{"X-Signature": sig}, body: specBody + " ", want: webhook.ErrNoMatchingSignature},
		{name: "another key", header: map[string]string{"X-Signature": webhook.SignHex([]byte("other"), []byte(specBody))}, want: webhook.ErrNoMatchingSignature},
		{name: "missing", header: map[string]string{"X-Webhook-Delivery-ID": specMsgID}, want: webhook.ErrMissingHeaders},
		{name: "not hex", header: map[string]string{"X-Signature": strings.Repeat("zz", 32)}, want: webhook.ErrInvalidHeaders},
		{name: "too short", header: map[string]string{"X-Signature": sig[:62]}, want: webhook.ErrInvalidHeaders},
		{name: "sha1 length", header: map[string]string{"X-Signature": sig[:40]}, want: webhook.ErrInvalidHeaders},
		{name: "standard signature in the wrong header", header: map[string]string{"X-Signature": specSignature}, want: webhook.ErrInvalidHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h[k] = []string{v}
			}
			body := specBody
			if tt.body != "" {
				body = tt.body
			}
			err := webhook.VerifyHex(key, h, []byte(body))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyHex = %v, want %v", err, tt.want)
			}
		})
	}
}
