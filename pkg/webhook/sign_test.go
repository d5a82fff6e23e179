package webhook_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// The example vector of the Standard Webhooks specification, as its
// reference libraries test it.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specUnix      = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

	// The asymmetric vector of the reference Go library: the seed is the
	// ASCII "TESTSIGNINGKEYDONOTUSETHISFORANY".
	specSigningKey = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
	specSignatureA = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
)

var specTime = time.Unix(specUnix, 0)

func mustSecret(t testing.TB, s string) []byte {
	t.Helper()
	k, err := webhook.ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignSpecVector(t *testing.T) {
	got := webhook.Sign(mustSecret(t, specSecret), specMsgID, specTime, []byte(specBody))
	if got != specSignature {
		t.Errorf("Sign = %s, want %s", got, specSignature)
	}
	// Only whole seconds are signed: the header carries unix seconds.
	if got := webhook.Sign(mustSecret(t, specSecret), specMsgID, specTime.Add(999*time.Millisecond), []byte(specBody)); got != specSignature {
		t.Errorf("Sign with sub-second time = %s, want %s", got, specSignature)
	}
}

func TestSignEd25519SpecVector(t *testing.T) {
	k, err := webhook.ParseSigningKey(specSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := webhook.SignEd25519(k, specMsgID, specTime, []byte(specBody)); got != specSignatureA {
		t.Errorf("SignEd25519 = %s, want %s", got, specSignatureA)
	}
}

// Every part of "<id>.<timestamp>.<body>" must change the signature, and the
// separators must keep the parts apart.
func TestSignCoversEveryPart(t *testing.T) {
	key := mustSecret(t, specSecret)
	base := webhook.Sign(key, "msg_1", specTime, []byte("body"))
	variants := map[string]string{
		"id":        webhook.Sign(key, "msg_2", specTime, []byte("body")),
		"timestamp": webhook.Sign(key, "msg_1", specTime.Add(time.Second), []byte("body")),
		"body":      webhook.Sign(key, "msg_1", specTime, []byte("bodY")),
		"key":       webhook.Sign(mustSecret(t, "whsec_"+b64(24, 1)), "msg_1", specTime, []byte("body")),
	}
	for part, sig := range variants {
		if sig == base {
			t.Errorf("changing the %s leaves the signature unchanged", part)
		}
	}
}

func TestSigner(t *testing.T) {
	newSecret := "whsec_" + b64(32, 1)
	oldSecret := "whsec_" + b64(24, 2)
	s, err := webhook.NewSigner(newSecret, specSigningKey, oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(specBody)
	got := s.Sign(specMsgID, specTime, body)
	want := strings.Join([]string{
		webhook.Sign(mustSecret(t, newSecret), specMsgID, specTime, body),
		webhook.Sign(mustSecret(t, oldSecret), specMsgID, specTime, body),
		specSignatureA,
	}, " ")
	if got != want {
		t.Errorf("Signer.Sign =\n%s\nwant\n%s", got, want)
	}

	h := http.Header{}
	s.SetHeaders(h, specMsgID, specTime, body)
	for name, want := range map[string]string{
		"webhook-id":        specMsgID,
		"webhook-timestamp": "1614265330",
		"webhook-signature": want,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestNewSignerErrors(t *testing.T) {
	tests := []struct {
		name    string
		keys    []string
		wantErr string
	}{
		{name: "no keys", wantErr: "no keys"},
		{name: "short secret second", keys: []string{specSecret, "whsec_" + b64(8, 1)}, wantErr: "key 1"},
		{name: "bad signing key", keys: []string{"whsk_" + b64(16, 1)}, wantErr: "key 0"},
		{name: "public key cannot sign", keys: []string{"whpk_" + b64(32, 1)}, wantErr: "ed25519 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := webhook.NewSigner(tt.keys...)
			if !errors.Is(err, webhook.ErrInvalidKey) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrInvalidKey containing %q", err, tt.wantErr)
			}
			if s != nil {
				t.Error("returned a Signer along with an error")
			}
		})
	}
}
