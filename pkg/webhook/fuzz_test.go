package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// FuzzVerify feeds hostile headers and bodies to Verify. It must never
// panic, must accept a genuine signature whatever the id and body, and must
// reject the fuzzer's signature header unless it contains a genuine one.
func FuzzVerify(f *testing.F) {
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", []byte(`{"test": 2432232314}`), specSignature, "1614265330")
	f.Add("", []byte{}, "", "")
	f.Add("a.b", []byte("."), "v1, v1a, v2,x ,, v1,====", "+1614265330")
	f.Add("msg_1", []byte{0, 0xff}, "v1a,"+strings.Repeat("A", 86)+"==", "9223372036854775807")

	now := time.Unix(specUnix, 0)
	secret := mustSecret(f, specSecret)
	sk, pk, err := webhook.NewKeyPair()
	if err != nil {
		f.Fatal(err)
	}
	signer, err := webhook.NewSigner(specSecret, sk)
	if err != nil {
		f.Fatal(err)
	}
	v := mustVerifier(f, specSecret, pk).With(webhook.WithClock(func() time.Time { return now }))

	f.Fuzz(func(t *testing.T, id string, body []byte, sigHeader, tsHeader string) {
		hostile := http.Header{}
		hostile[http.CanonicalHeaderKey(webhook.HeaderID)] = []string{id}
		hostile[http.CanonicalHeaderKey(webhook.HeaderTimestamp)] = []string{tsHeader}
		hostile[http.CanonicalHeaderKey(webhook.HeaderSignature)] = []string{sigHeader}
		_ = v.Verify(hostile, body)
		_ = webhook.VerifyHex(secret, hostile, body)

		genuine := signer.Sign(id, now, body)
		h := http.Header{}
		h[http.CanonicalHeaderKey(webhook.HeaderID)] = []string{id}
		h[http.CanonicalHeaderKey(webhook.HeaderTimestamp)] = []string{strconv.FormatInt(now.Unix(), 10)}

		h[http.CanonicalHeaderKey(webhook.HeaderSignature)] = []string{genuine}
		err := v.Verify(h, body)
		if id == "" {
			if !errors.Is(err, webhook.ErrMissingHeaders) {
				t.Fatalf("empty id: Verify = %v, want ErrMissingHeaders", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("genuine signature %q rejected: %v", genuine, err)
		}
		for _, one := range strings.Fields(genuine) {
			h[http.CanonicalHeaderKey(webhook.HeaderSignature)] = []string{one}
			if err := v.Verify(h, body); err != nil {
				t.Fatalf("genuine signature %q alone rejected: %v", one, err)
			}
		}

		h[http.CanonicalHeaderKey(webhook.HeaderSignature)] = []string{sigHeader}
		err = v.Verify(h, body)
		if err == nil && !containsAny(sigHeader, strings.Fields(genuine)) {
			t.Fatalf("forged signature header %q accepted", sigHeader)
		}

		if err := webhook.VerifyHex(secret, http.Header{"X-Signature": {webhook.SignHex(secret, body)}}, body); err != nil {
			t.Fatalf("genuine hex signature rejected: %v", err)
		}
	})
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
