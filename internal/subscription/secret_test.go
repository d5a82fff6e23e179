package subscription

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

// TestSecretSign holds a Secret's signatures to webhook.Sign, signature
// after signature with its kept HMACs, for keys of every length around the
// hash's block (longer keys are hashed first) and bodies of any length.
func TestSecretSign(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ts := time.Unix(1700000000, 0)
	for n := 1; n <= 130; n++ {
		key := make([]byte, n)
		for i := range key {
			key[i] = byte(rng.IntN(256))
		}
		kept, literal := NewSecret(key, time.Time{}), Secret{Key: key}
		for i := range 3 {
			body := bytes.Repeat([]byte{byte('a' + i)}, rng.IntN(2000))
			id := "msg_" + string(rune('a'+i))
			want := webhook.Sign(key, id, ts.Add(time.Duration(i)*time.Second), body)
			if got := kept.Sign(id, ts.Add(time.Duration(i)*time.Second), body); got != want {
				t.Fatalf("key of %d bytes, signature %d: NewSecret signs %q, want %q", n, i, got, want)
			}
			if got := literal.Sign(id, ts.Add(time.Duration(i)*time.Second), body); got != want {
				t.Fatalf("key of %d bytes, signature %d: a literal Secret signs %q, want %q", n, i, got, want)
			}
		}
	}
}

// TestSecretSignConcurrently signs with one Secret from many goroutines
// (run under -race): each signature is its own request's.
func TestSecretSignConcurrently(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	sec := NewSecret(key, time.Time{})
	ts := time.Unix(1700000000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				body := []byte{byte(g), byte(i)}
				if got, want := sec.Sign("msg_x", ts, body), webhook.Sign(key, "msg_x", ts, body); got != want {
					t.Errorf("goroutine %d, request %d: %q, want %q", g, i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSigningSecrets pins which secrets sign: the unexpired ones, newest
// first, without copying them in the usual case, and never letting an
// append by the caller write into the subscription's own secrets.
func TestSigningSecrets(t *testing.T) {
	now := time.Unix(1700000000, 0)
	cur, old, gone := []byte("current"), []byte("rotated"), []byte("expired")
	s := &Subscription{Secrets: []Secret{
		{Key: cur},
		{Key: old, ExpiresAt: now.Add(time.Hour)},
		{Key: gone, ExpiresAt: now.Add(-time.Second)},
	}}
	keys := func(secs []Secret) [][]byte {
		var out [][]byte
		for _, sec := range secs {
			out = append(out, sec.Key)
		}
		return out
	}
	if got := keys(s.SigningSecrets(now)); len(got) != 2 || !bytes.Equal(got[0], cur) || !bytes.Equal(got[1], old) {
		t.Errorf("with one expired: %q, want current then rotated", got)
	}
	if got := keys(s.SigningSecrets(now.Add(time.Hour))); len(got) != 1 || !bytes.Equal(got[0], cur) {
		t.Errorf("after the grace period: %q, want only current", got)
	}

	s.Secrets = s.Secrets[:2] // the expired secret stays past the length
	if allocs := testing.AllocsPerRun(10, func() { s.SigningSecrets(now) }); allocs != 0 {
		t.Errorf("no expired secret: %.0f allocations, want none", allocs)
	}
	_ = append(s.SigningSecrets(now), Secret{Key: []byte("appended")})
	if !bytes.Equal(s.Secrets[:3][2].Key, gone) {
		t.Error("an append to SigningSecrets' result wrote into the subscription's secrets")
	}
}

func BenchmarkSecretSign(b *testing.B) {
	key := bytes.Repeat([]byte{9}, 32)
	body := bytes.Repeat([]byte("x"), 1100)
	ts := time.Unix(1700000000, 0)
	for name, sec := range map[string]Secret{"literal": {Key: key}, "NewSecret": NewSecret(key, time.Time{})} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sec.Sign("msg_abcdefghijklmnopqrstuvwxyz", ts, body)
			}
		})
	}
}

// TestDecodedSecretsKeepTheirHMACs pins that the secrets of a decoded
// subscription, those the Store serves and deliveries sign with, are the
// kind that keep their HMACs.
func TestDecodedSecretsKeepTheirHMACs(t *testing.T) {
	c, err := NewCipher(bytes.Repeat([]byte{7}, MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	value, err := encodeRecord(&Subscription{ID: "sub_1", Version: 1, Secrets: []Secret{
		{Key: []byte("current")}, {Key: []byte("rotated"), ExpiresAt: now.Add(time.Hour)},
	}}, c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := decodeRecord(value, c)
	if err != nil {
		t.Fatal(err)
	}
	for i, sec := range s.Secrets {
		if sec.macs == nil {
			t.Errorf("secret %d of a decoded subscription makes an HMAC for every request", i)
		}
	}
}
