package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// The example from the Standard Webhooks specification.
func ExampleSign() {
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	sig := webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	fmt.Println(sig)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// A sender that signs many requests with one secret keeps its HMAC and
// resets it between requests.
func ExampleSignHMAC() {
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	for _, id := range []string{"msg_p5jXN8AQM9LWM0D4loKWxJek", "msg_p5jXN8AQM9LWM0D4loKWxJek"} {
		fmt.Println(webhook.SignHMAC(mac, id, time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
		mac.Reset()
	}
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

func ExampleVerifier_Verify() {
	v, err := webhook.NewVerifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	// The example was signed in 2021; pretend it is that day.
	v = v.With(webhook.WithClock(func() time.Time { return time.Unix(1614265330, 0) }))

	header := http.Header{}
	header.Set(webhook.HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	header.Set(webhook.HeaderTimestamp, "1614265330")
	header.Set(webhook.HeaderSignature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

	fmt.Println(v.Verify(header, []byte(`{"test": 2432232314}`)))

	err = v.Verify(header, []byte(`{"test": 1}`))
	fmt.Println(errors.Is(err, webhook.ErrNoMatchingSignature))
	// Output:
	// <nil>
	// true
}

// A receiver builds one Verifier at start-up and checks every request in its
// handler. During a secret rotation it can hold both secrets.
func ExampleNewVerifier() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // e.g. os.Getenv("HERALD_WEBHOOK_SECRET")
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		log.Fatal(err)
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := v.VerifyRequest(r, 1<<20)
		switch {
		case errors.Is(err, webhook.ErrBodyTooLarge):
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		// Deliveries can repeat: dedupe on the id before acting.
		fmt.Printf("event %s: %s\n", r.Header.Get(webhook.HeaderID), body)
		w.WriteHeader(http.StatusNoContent)
	})

	// What herald sends.
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		log.Fatal(err)
	}
	body := `{"type":"order.created","data":{"id":"o_1"}}`
	req := httptest.NewRequest(http.MethodPost, "/webhooks/herald", strings.NewReader(body))
	signer.SetHeaders(req.Header, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now(), []byte(body))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	// A forged request.
	req = httptest.NewRequest(http.MethodPost, "/webhooks/herald", strings.NewReader(body))
	req.Header.Set(webhook.HeaderID, "msg_forged")
	req.Header.Set(webhook.HeaderTimestamp, fmt.Sprint(time.Now().Unix()))
	req.Header.Set(webhook.HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// event msg_2KWPBgLlAfxdpx2AI54pPJ85f4W: {"type":"order.created","data":{"id":"o_1"}}
	// 204
	// 401
}

// While a secret is rotated herald signs with the new and the old one.
func ExampleSigner_SetHeaders() {
	signer, err := webhook.NewSigner(
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",         // new
		"whsec_dGhlIG9sZCBzZWNyZXQsIHN0aWxsIHNpZ25pbmc=", // old, until the grace period ends
	)
	if err != nil {
		log.Fatal(err)
	}
	h := http.Header{}
	signer.SetHeaders(h, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	fmt.Println(h.Get(webhook.HeaderID))
	fmt.Println(h.Get(webhook.HeaderTimestamp))
	for _, sig := range strings.Fields(h.Get(webhook.HeaderSignature)) {
		fmt.Println(sig)
	}
	// Output:
	// msg_p5jXN8AQM9LWM0D4loKWxJek
	// 1614265330
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// v1,F3mTRybVFhmyrYsOFBHcEKX+noWzdvmCcd0/0Ajy/gk=
}

// With asymmetric signatures the receiver holds only the public key.
func ExampleNewKeyPair() {
	signingKey, publicKey, err := webhook.NewKeyPair()
	if err != nil {
		log.Fatal(err)
	}
	signer, err := webhook.NewSigner(signingKey) // herald's side
	if err != nil {
		log.Fatal(err)
	}
	v, err := webhook.NewVerifier(publicKey) // the receiver's side
	if err != nil {
		log.Fatal(err)
	}

	body := []byte(`{"type":"order.created"}`)
	h := http.Header{}
	signer.SetHeaders(h, "msg_1", time.Now(), body)
	fmt.Println(strings.HasPrefix(h.Get(webhook.HeaderSignature), "v1a,"))
	fmt.Println(v.Verify(h, body))
	// Output:
	// true
	// <nil>
}

// Receivers of the legacy hex scheme check X-Signature, the hex HMAC of the
// body alone.
func ExampleVerifyHex() {
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	h.Set(webhook.HeaderHexSignature, webhook.SignHex(key, body))
	fmt.Println(h.Get(webhook.HeaderHexSignature))
	fmt.Println(webhook.VerifyHex(key, h, body))
	// Output:
	// e2cb4f5251572539d458bfb8a7adb533b08801e6a794467e06f771debbb0818b
	// <nil>
}
