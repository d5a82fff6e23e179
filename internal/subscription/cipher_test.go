package subscription

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func newTestCipher(t testing.TB) *Cipher {
	t.Helper()
	c, err := NewCipher(bytes.Repeat([]byte{7}, MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCipherRoundTrip(t *testing.T) {
	c := newTestCipher(t)
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("secret"), 100)} {
		sealed, err := c.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1:") {
			t.Errorf("sealed value %q lacks the version prefix", sealed)
		}
		// A short plaintext's encoding turns up in random bytes by chance
		// ("x" is "eA", in about one sealed value of a hundred).
		if len(plain) >= 16 && strings.Contains(sealed, base64.RawURLEncoding.EncodeToString(plain)) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := c.Open(sealed)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, want %q", got, plain)
		}
	}
}

func TestCipherNonceIsRandom(t *testing.T) {
	c := newTestCipher(t)
	a, _ := c.Seal([]byte("same"))
	b, _ := c.Seal([]byte("same"))
	if a == b {
		t.Fatal("sealing the same plaintext twice gave the same value: the nonce repeats")
	}
}

func TestCipherTamper(t *testing.T) {
	c := newTestCipher(t)
	sealed, _ := c.Seal([]byte("whsec_secret"))
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	for i := keyIDSize; i < len(raw); i++ { // every byte after the key id: nonce, ciphertext, tag
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if _, err := c.Open("v1:" + base64.RawURLEncoding.EncodeToString(bad)); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	for _, bad := range []string{"", "v1:", "v1:!!!", "v2:" + strings.TrimPrefix(sealed, "v1:"), strings.TrimPrefix(sealed, "v1:"), sealed[:len(sealed)-4]} {
		if _, err := c.Open(bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

func TestCipherWrongKey(t *testing.T) {
	key := make([]byte, MasterKeySize)
	rand.Read(key)
	other, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := newTestCipher(t).Seal([]byte("secret"))
	_, err = other.Open(sealed)
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}

	// A forged key id does not get past authentication.
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	copy(raw, other.keyID[:])
	if _, err := other.Open("v1:" + base64.RawURLEncoding.EncodeToString(raw)); err == nil || errors.Is(err, ErrWrongKey) {
		t.Fatalf("forged key id: %v, want an authentication failure", err)
	}
}

func TestNewCipherKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewCipher(make([]byte, n)); err == nil {
			t.Errorf("NewCipher accepted a %d-byte key", n)
		}
	}
}

func TestParseMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfe}, 32)
	for _, in := range []string{
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		" " + base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := ParseMasterKey(in)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseMasterKey(%q) = %x, %v", in, got, err)
		}
	}
	for in, want := range map[string]string{
		"":     "empty",
		"   ":  "empty",
		"%%%%": "not valid base64",
		base64.StdEncoding.EncodeToString(make([]byte, 16)): "16 bytes, want 32",
		base64.StdEncoding.EncodeToString(make([]byte, 33)): "33 bytes, want 32",
	} {
		_, err := ParseMasterKey(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMasterKey(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}
