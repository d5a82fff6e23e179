package webhook_test

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

func TestHMACKeySpecVector(t *testing.T) {
	k := webhook.NewHMACKey(mustSecret(t, specSecret))
	if got := k.Sign(specMsgID, specTime, []byte(specBody)); got != specSignature {
		t.Errorf("HMACKey.Sign = %s, want %s", got, specSignature)
	}
}

// TestHMACKeySignsAsSign holds HMACKey to Sign for keys of every length
// around SHA-256's block (longer ones are hashed first), bodies of any
// length, and many keys signing in turn through the shared hashes.
func TestHMACKeySignsAsSign(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var keys [][]byte
	var hk []*webhook.HMACKey
	for n := 1; n <= 130; n++ {
		key := make([]byte, n)
		for i := range key {
			key[i] = byte(rng.IntN(256))
		}
		keys, hk = append(keys, key), append(hk, webhook.NewHMACKey(key))
	}
	ts := time.Unix(1700000000, 0)
	for round := range 3 {
		for i, key := range keys {
			body := bytes.Repeat([]byte{byte('a' + round)}, rng.IntN(2000))
			id := "msg_" + string(rune('a'+i%26))
			if got, want := hk[i].Sign(id, ts.Add(time.Duration(round)*time.Second), body), webhook.Sign(key, id, ts.Add(time.Duration(round)*time.Second), body); got != want {
				t.Fatalf("key of %d bytes, round %d: %q, want %q", len(key), round, got, want)
			}
		}
	}
}

// TestHMACKeySignConcurrently signs with two keys from many goroutines
// (run under -race): each signature is its own request's and key's.
func TestHMACKeySignConcurrently(t *testing.T) {
	keys := [][]byte{bytes.Repeat([]byte{9}, 32), bytes.Repeat([]byte{7}, 100)}
	hk := []*webhook.HMACKey{webhook.NewHMACKey(keys[0]), webhook.NewHMACKey(keys[1])}
	ts := time.Unix(1700000000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				body := []byte{byte(g), byte(i)}
				k := (g + i) % 2
				if got, want := hk[k].Sign("msg_x", ts, body), webhook.Sign(keys[k], "msg_x", ts, body); got != want {
					t.Errorf("goroutine %d, request %d: %q, want %q", g, i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkSignManyKeys signs with a thousand keys in turn, as a fan-out
// to a thousand subscriptions does: HMACKey against hmac.New per request.
func BenchmarkSignManyKeys(b *testing.B) {
	keys := make([][]byte, 1000)
	hk := make([]*webhook.HMACKey, len(keys))
	for i := range keys {
		keys[i] = bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 16)
		hk[i] = webhook.NewHMACKey(keys[i])
	}
	ts := time.Now()
	b.Run("Sign", func(b *testing.B) {
		b.SetBytes(int64(len(benchBody)))
		i := 0
		for b.Loop() {
			webhook.Sign(keys[i%len(keys)], specMsgID, ts, benchBody)
			i++
		}
	})
	b.Run("HMACKey", func(b *testing.B) {
		b.SetBytes(int64(len(benchBody)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			hk[i%len(hk)].Sign(specMsgID, ts, benchBody)
			i++
		}
	})
}
