package webhook_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/herald-dev/herald/pkg/webhook"
)

func b64(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func TestNewSecret(t *testing.T) {
	s1, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s1, "whsec_") {
		t.Errorf("secret %q lacks the whsec_ prefix", s1)
	}
	if s1 == s2 {
		t.Errorf("two secrets are equal: %q", s1)
	}
	key, err := webhook.ParseSecret(s1)
	if err != nil {
		t.Fatalf("ParseSecret(NewSecret()): %v", err)
	}
	if len(key) != 32 {
		t.Errorf("key is %d bytes, want 32", len(key))
	}
}

func TestParseSecret(t *testing.T) {
	specKey, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	key32 := bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr string // substring of the error; "" means success
	}{
		{name: "spec secret", in: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", want: specKey},
		{name: "without prefix", in: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", want: specKey},
		{name: "trailing newline", in: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", want: specKey},
		{name: "padded 32 bytes", in: "whsec_" + b64(32, 7), want: key32},
		{name: "unpadded 32 bytes", in: "whsec_" + strings.TrimRight(b64(32, 7), "="), want: key32},
		{name: "24 bytes is the minimum", in: "whsec_" + b64(24, 1), want: bytes.Repeat([]byte{1}, 24)},
		{name: "64 bytes is the maximum", in: "whsec_" + b64(64, 1), want: bytes.Repeat([]byte{1}, 64)},
		{name: "23 bytes", in: "whsec_" + b64(23, 1), wantErr: "23 bytes, want 24 to 64"},
		{name: "65 bytes", in: "whsec_" + b64(65, 1), wantErr: "65 bytes, want 24 to 64"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "prefix only", in: "whsec_", wantErr: "empty"},
		{name: "bad base64", in: "whsec_MfKQ9r8GKYqr!wjUPD8ILPZIo2LaLaSw", wantErr: "not valid base64"},
		{name: "url-safe alphabet", in: "whsec_MfKQ9r8GKYqr_wjUPD8ILPZIo2LaLaSw", wantErr: "not valid base64"},
		{name: "non-zero padding bits", in: "whsec_" + b64(32, 7)[:42] + "Z=", wantErr: "not valid base64"},
		{name: "huge", in: "whsec_" + strings.Repeat("A", 1<<20), wantErr: "too long"},
		{name: "public key", in: "whpk_" + b64(32, 1), wantErr: "ed25519 key"},
		{name: "signing key", in: "whsk_" + b64(32, 1), wantErr: "ed25519 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.ParseSecret(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, webhook.ErrInvalidKey) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidKey containing %q", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("returned key %x along with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("key = %x, want %x", got, tt.want)
			}
		})
	}
}

// A secret that is rejected must not end up in logs through the error.
func TestParseSecretErrorOmitsSecret(t *testing.T) {
	body := b64(20, 0x5a)
	_, err := webhook.ParseSecret("whsec_" + body)
	if err == nil {
		t.Fatal("20-byte secret accepted")
	}
	if strings.Contains(err.Error(), body) {
		t.Errorf("error %q contains the secret", err)
	}
}

func TestNewKeyPair(t *testing.T) {
	sk, pk, err := webhook.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sk, "whsk_") || !strings.HasPrefix(pk, "whpk_") {
		t.Fatalf("keys %q, %q lack their prefixes", sk, pk)
	}
	seed, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sk, "whsk_"))
	if len(seed) != ed25519.SeedSize {
		t.Errorf("whsk_ holds %d bytes, want the %d-byte seed", len(seed), ed25519.SeedSize)
	}
	priv, err := webhook.ParseSigningKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := webhook.ParsePublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Error("public key does not belong to the signing key")
	}
	sk2, _, err := webhook.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if sk == sk2 {
		t.Error("two key pairs are equal")
	}
}

func TestParseSigningKey(t *testing.T) {
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	want := ed25519.NewKeyFromSeed(seed)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
	mismatched := append(append([]byte{}, seed...), other.Public().(ed25519.PublicKey)...)
	enc := base64.StdEncoding.EncodeToString
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "seed", in: "whsk_" + enc(seed)},
		{name: "seed without prefix", in: enc(seed)},
		{name: "64-byte private key", in: "whsk_" + enc(want)},
		{name: "public half of another key", in: "whsk_" + enc(mismatched), wantErr: "does not match"},
		{name: "31 bytes", in: "whsk_" + b64(31, 3), wantErr: "31 bytes"},
		{name: "bad base64", in: "whsk_***", wantErr: "not valid base64"},
		{name: "empty", in: "whsk_", wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.ParseSigningKey(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, webhook.ErrInvalidKey) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidKey containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Error("parsed a different key")
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "32 bytes", in: "whpk_" + b64(32, 9)},
		{name: "without prefix", in: b64(32, 9)},
		{name: "31 bytes", in: "whpk_" + b64(31, 9), wantErr: "31 bytes, want 32"},
		{name: "64 bytes", in: "whpk_" + b64(64, 9), wantErr: "64 bytes, want 32"},
		{name: "bad base64", in: "whpk_%%%%", wantErr: "not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.ParsePublicKey(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, webhook.ErrInvalidKey) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidKey containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, bytes.Repeat([]byte{9}, 32)) {
				t.Errorf("key = %x", []byte(got))
			}
		})
	}
}

func b64Bytes(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
