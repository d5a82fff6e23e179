package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultIdempotencyTTL is how long an Idempotency-Key is remembered.
const DefaultIdempotencyTTL = 24 * time.Hour

// pendingTTL bounds how long a claim of a request that died mid-write
// blocks retries with the same key.
const pendingTTL = time.Minute

// IdempotencyStore is the part of a Redis client idempotency needs.
type IdempotencyStore interface {
	SetNX(ctx context.Context, key string, value any, expiration time.Duration) *redis.BoolCmd
	Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd
	Get(ctx context.Context, key string) *redis.StringCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
}

// RedisKeyPrefix prefixes the keys: herald:idem:<sha256 of the key>.
const RedisKeyPrefix = "herald:idem:"

type idempotency struct {
	st  IdempotencyStore
	ttl time.Duration
}

// mark is the value kept under a key: the event id the key stands for, a
// fingerprint of the request, and whether it was written yet.
type mark struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fp"`
	Done        bool   `json:"done"`
}

type claim struct {
	id       string
	replayed bool
}

func redisKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	return RedisKeyPrefix + hex.EncodeToString(sum[:])
}

// claim takes the key for this request (SET NX), or reports what the
// request that holds it came to.
func (i *idempotency) claim(ctx context.Context, key, fp, id string) (claim, error) {
	k := redisKey(key)
	pending, _ := json.Marshal(mark{ID: id, Fingerprint: fp})
	for range 3 {
		ok, err := i.st.SetNX(ctx, k, pending, pendingTTL).Result()
		if err != nil {
			return claim{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if ok {
			return claim{id: id}, nil
		}
		raw, err := i.st.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired between the two calls
		}
		if err != nil {
			return claim{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		var m mark
		if json.Unmarshal([]byte(raw), &m) != nil {
			return claim{}, fmt.Errorf("%w: unreadable mark", ErrUnavailable)
		}
		switch {
		case m.Fingerprint != fp:
			return claim{}, ErrKeyReused
		case !m.Done:
			return claim{}, ErrInProgress
		}
		return claim{id: m.ID, replayed: true}, nil
	}
	return claim{}, ErrInProgress
}

func (i *idempotency) complete(ctx context.Context, key, fp, id string) error {
	done, _ := json.Marshal(mark{ID: id, Fingerprint: fp, Done: true})
	ttl := i.ttl
	if ttl <= 0 {
		ttl = DefaultIdempotencyTTL
	}
	return i.st.Set(context.WithoutCancel(ctx), redisKey(key), done, ttl).Err()
}

// release frees the key of a request that wrote nothing, so that its retry
// can.
func (i *idempotency) release(ctx context.Context, key string) {
	_ = i.st.Del(context.WithoutCancel(ctx), redisKey(key)).Err()
}

// fingerprint identifies a request as sent: a retry must send the same
// event (its id, if it set one, included).
func fingerprint(ev *Event) string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(ev.ID), []byte(ev.Type), []byte(ev.Key), ev.Data} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}
