package subscription

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/pkg/webhook"
)

const (
	// maxUpdateTries bounds how often Update with ifVersion 0 rebuilds its
	// change on a newer version after losing to a concurrent writer.
	maxUpdateTries = 5
	// maxRepairs bounds how often a losing writer restates the winner
	// while other writes keep landing after its repairs.
	maxRepairs = 10
	// repairTimeout lets a repair finish after the caller has given up.
	repairTimeout = 30 * time.Second
	// maxSecrets bounds the rotated-out secrets kept in their grace period.
	maxSecrets = 5
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns "sub_" and 26 base32 characters of 128 random bits.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return "sub_" + idEncoding.EncodeToString(b)
}

func newWriteID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Create validates sub, fills defaults and server-owned fields (ID,
// timestamps, version 1, a new whsec_ secret), and writes it. It returns
// once this instance has read the record back, so a Get that follows sees
// it, with the stored subscription and the secret in its whsec_ form: the
// only time the secret is given out. sub itself is not changed. If sub has
// a SigningKey it is kept (sealed) and PublicKey derived from it.
func (s *Store) Create(ctx context.Context, sub *Subscription) (*Subscription, string, error) {
	next := sub.clone()
	ApplyDefaults(next)
	if err := Validate(next); err != nil {
		return nil, "", err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, "", err
	}
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	next.ID = newID()
	next.CreatedAt, next.UpdatedAt = now, now
	next.Version = 1
	next.Secrets = []Secret{{Key: key}}
	next.PublicKey = ""
	if next.SigningKey != nil {
		next.PublicKey = publicKeyOf(next.SigningKey)
	}
	value, err := encodeRecord(next, s.cipher)
	if err != nil {
		return nil, "", err
	}
	o, err := s.write(ctx, next.ID, value)
	if err != nil {
		return nil, "", err
	}
	if !o.applied {
		return nil, "", ErrConflict // an id collision: 128 random bits make it theoretical
	}
	return o.sub, secret, nil
}

// Update applies change to a copy of the subscription and writes the result
// as the next version. With ifVersion > 0 the current version must equal
// it, else ErrConflict. With ifVersion 0, losing to a concurrent writer
// makes Update call change again on the newer version (a few times), so
// change must be safe to repeat. The result is validated (*FieldError);
// ID, CreatedAt, Version, UpdatedAt and the keys are the Store's and
// change cannot set them.
func (s *Store) Update(ctx context.Context, id string, ifVersion int64, change func(*Subscription) error) (*Subscription, error) {
	return s.modify(ctx, id, ifVersion, func(cur, next *Subscription) error {
		if err := change(next); err != nil {
			return err
		}
		next.Secrets, next.SigningKey, next.PublicKey = cur.clone().Secrets, cur.SigningKey, cur.PublicKey
		return nil
	})
}

// RotateSecret gives the subscription a new current secret and returns it
// (whsec_ form). The previous secrets keep signing until now+grace (or
// their earlier expiry); expired ones are dropped.
func (s *Store) RotateSecret(ctx context.Context, id string, grace time.Duration) (string, error) {
	secret, err := webhook.NewSecret()
	if err != nil {
		return "", err
	}
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		return "", err
	}
	_, err = s.modify(ctx, id, 0, func(cur, next *Subscription) error {
		until := s.now().Add(grace)
		secrets := []Secret{{Key: key}}
		for _, old := range next.Secrets {
			if old.ExpiresAt.IsZero() || old.ExpiresAt.After(until) {
				old.ExpiresAt = until
			}
			if len(secrets) < maxSecrets {
				secrets = append(secrets, old)
			}
		}
		next.Secrets = secrets
		return nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// modify is the read-change-write loop of Update and RotateSecret. fn sees
// the current snapshot and a copy to change.
func (s *Store) modify(ctx context.Context, id string, ifVersion int64, fn func(cur, next *Subscription) error) (*Subscription, error) {
	if err := s.WaitReady(ctx); err != nil {
		return nil, err
	}
	for try := 1; ; try++ {
		cur, ok := s.Get(id)
		if !ok {
			return nil, ErrNotFound
		}
		if ifVersion != 0 && cur.Version != ifVersion {
			return nil, ErrConflict
		}
		next := cur.clone()
		if err := fn(cur, next); err != nil {
			return nil, err
		}
		now := s.now().UTC()
		next.ID, next.CreatedAt = cur.ID, cur.CreatedAt
		next.Version, next.UpdatedAt = cur.Version+1, now
		next.Secrets = unexpired(next.Secrets, now)
		ApplyDefaults(next)
		if err := Validate(next); err != nil {
			return nil, err
		}
		value, err := encodeRecord(next, s.cipher)
		if err != nil {
			return nil, err
		}
		o, err := s.write(ctx, id, value)
		switch {
		case err != nil:
			return nil, err
		case o.applied:
			return o.sub, nil
		case o.sub == nil:
			return nil, ErrNotFound // deleted meanwhile
		case ifVersion != 0 || try == maxUpdateTries:
			return nil, ErrConflict
		}
	}
}

func unexpired(secrets []Secret, now time.Time) []Secret {
	out := secrets[:0]
	for _, sec := range secrets {
		if sec.ExpiresAt.IsZero() || now.Before(sec.ExpiresAt) {
			out = append(out, sec)
		}
	}
	return out
}

// Delete writes a tombstone for the subscription. It returns ErrNotFound if
// the subscription is not held, or was deleted by someone else first.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.WaitReady(ctx); err != nil {
		return err
	}
	if _, ok := s.Get(id); !ok {
		return ErrNotFound
	}
	o, err := s.write(ctx, id, nil)
	if err != nil {
		return err
	}
	if !o.existed {
		return ErrNotFound
	}
	return nil
}

// write produces value (nil: tombstone) for id and returns what applying
// it did. If it lost, it repairs, as Store's comment explains, before
// returning.
func (s *Store) write(ctx context.Context, id string, value []byte) (outcome, error) {
	o, err := s.produce(ctx, id, value, false)
	if err != nil || o.applied || o.err != nil {
		return o, err
	}
	// The caller may give up now; the repair must still happen.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), repairTimeout)
	defer cancel()
	for range maxRepairs {
		s.mu.RLock()
		e, held := s.subs[id]
		_, deleted := s.deleted[id]
		s.mu.RUnlock()
		if !held && !deleted {
			// This instance could not read the current state; it has
			// nothing true to restate.
			s.log.Warn("lost a write to a subscription this instance cannot read; not restating it",
				zap.String("subscription", id))
			break
		}
		raw := e.raw // nil when deleted: restate the tombstone
		r, err := s.produce(rctx, id, raw, true)
		if err != nil {
			s.log.Warn("restating subscription after a lost write failed; a stale record may stay last in the topic",
				zap.String("subscription", id), zap.Error(err))
			break
		}
		if r.applied {
			break
		}
	}
	return o, nil
}

// produce writes one record and waits until this instance has applied it.
func (s *Store) produce(ctx context.Context, id string, value []byte, repair bool) (outcome, error) {
	if err := s.WaitReady(ctx); err != nil {
		return outcome{}, err
	}
	s.mu.Lock()
	cl := s.cl
	writeID := newWriteID()
	done := make(chan outcome, 1)
	if cl != nil {
		s.waiters[writeID] = done
	}
	s.mu.Unlock()
	if cl == nil {
		return outcome{}, ErrStopped
	}
	defer func() {
		s.mu.Lock()
		delete(s.waiters, writeID)
		s.mu.Unlock()
	}()

	r := &kgo.Record{Topic: s.topic, Key: []byte(id), Value: value,
		Headers: []kgo.RecordHeader{{Key: HeaderWriteID, Value: []byte(writeID)}}}
	if repair {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderRepair, Value: []byte("1")})
	}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return outcome{}, fmt.Errorf("subscription: writing %s: %w", id, err)
	}
	select {
	case o := <-done:
		if o.err != nil {
			return o, fmt.Errorf("subscription: reading back %s: %w", id, o.err)
		}
		return o, nil
	case <-ctx.Done():
		return outcome{}, ctx.Err()
	case <-s.stopped:
		return outcome{}, ErrStopped
	}
}
