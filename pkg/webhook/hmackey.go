package webhook

import (
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"hash"
	"sync"
	"time"
)

// HMACKey is a v1 secret made ready to sign many requests: HMAC-SHA256
// hashes the key into an inner and an outer state before the message, and
// HMACKey does that once and keeps the two states. Signing then starts
// from them, on a SHA-256 hash that all keys share through a pool, so a
// sender with thousands of keys pays neither for the key's hashing nor for
// a hash per key. It is safe for concurrent use.
type HMACKey struct {
	inner, outer []byte // marshalled SHA-256 states after each padded key
}

// NewHMACKey returns the HMACKey of key, the decoded secret ([ParseSecret]).
func NewHMACKey(key []byte) *HMACKey {
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	var ipad, opad [sha256.BlockSize]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	state := func(pad []byte) []byte {
		h := sha256.New()
		h.Write(pad)
		b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic("webhook: SHA-256 state: " + err.Error())
		}
		return b
	}
	return &HMACKey{inner: state(ipad[:]), outer: state(opad[:])}
}

// sha256s are the hashes HMACKey signs with, shared by every key.
var sha256s = sync.Pool{New: func() any { return sha256.New() }}

// Sign returns the "v1,<base64 HMAC-SHA256>" signature, as [Sign] does with
// the same key.
func (k *HMACKey) Sign(msgID string, ts time.Time, body []byte) string {
	h := sha256s.Get().(hash.Hash)
	defer sha256s.Put(h)
	restore(h, k.inner)
	var sum [sha256.Size]byte
	inner := macHMAC(sum[:0], h, msgID, ts.Unix(), body)
	restore(h, k.outer)
	h.Write(inner)
	var sig [len(VersionHMAC) + 1 + 44]byte // 44: base64 of 32 bytes
	b := append(append(sig[:0], VersionHMAC...), ',')
	return string(base64.StdEncoding.AppendEncode(b, h.Sum(sum[:0])))
}

// restore sets h to a state NewHMACKey marshalled.
func restore(h hash.Hash, state []byte) {
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		panic("webhook: SHA-256 state: " + err.Error())
	}
}
