package webhook_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// A typical envelope is well under the 20 KB Standard Webhooks suggests.
var benchBody = bytes.Repeat([]byte(`{"k":"value"},`), 1<<10/14)

func BenchmarkSign(b *testing.B) {
	key := mustSecret(b, specSecret)
	ts := time.Now()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		webhook.Sign(key, specMsgID, ts, benchBody)
	}
}

func BenchmarkVerify(b *testing.B) {
	bench := func(b *testing.B, signingKeys, verifyingKeys []string) {
		signer, err := webhook.NewSigner(signingKeys...)
		if err != nil {
			b.Fatal(err)
		}
		v := mustVerifier(b, verifyingKeys...)
		h := http.Header{}
		signer.SetHeaders(h, specMsgID, time.Now(), benchBody)
		b.SetBytes(int64(len(benchBody)))
		for b.Loop() {
			if err := v.Verify(h, benchBody); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("hmac", func(b *testing.B) {
		bench(b, []string{specSecret}, []string{specSecret})
	})
	b.Run("hmac rotation", func(b *testing.B) {
		other := "whsec_" + b64(32, 1)
		bench(b, []string{other, specSecret}, []string{specSecret})
	})
	b.Run("ed25519", func(b *testing.B) {
		sk, pk, err := webhook.NewKeyPair()
		if err != nil {
			b.Fatal(err)
		}
		bench(b, []string{sk}, []string{pk})
	})
}
