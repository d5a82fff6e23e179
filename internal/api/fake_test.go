package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/pkg/webhook"
)

// memStore is an in-memory Store for tests of the HTTP layer alone: it
// can be told to fail the next update with a conflict, which a real store
// only does under a race.
type memStore struct {
	mu       sync.Mutex
	subs     map[string]*subscription.Subscription
	n        int
	ready    bool
	conflict bool // fail the next Update with ErrConflict
}

func newMemStore() *memStore {
	return &memStore{subs: map[string]*subscription.Subscription{}, ready: true}
}

func (m *memStore) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func (m *memStore) Create(_ context.Context, sub *subscription.Subscription) (*subscription.Subscription, string, error) {
	subscription.ApplyDefaults(sub)
	if err := subscription.Validate(sub); err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	c := *sub
	c.ID = fmt.Sprintf("sub_%06d", m.n)
	c.Version = 1
	c.CreatedAt = time.Now().UTC()
	c.UpdatedAt = c.CreatedAt
	secret := newSecret()
	key, _ := webhook.ParseSecret(secret)
	c.Secrets = []subscription.Secret{{Key: key}}
	if c.SigningKey != nil {
		c.PublicKey = webhook.PublicKeyPrefix + base64.StdEncoding.EncodeToString(c.SigningKey.Public().(ed25519.PublicKey))
	}
	m.subs[c.ID] = &c
	out := c
	return &out, secret, nil
}

func (m *memStore) Update(_ context.Context, id string, ifVersion int64, change func(*subscription.Subscription) error) (*subscription.Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.subs[id]
	if !ok {
		return nil, subscription.ErrNotFound
	}
	if m.conflict || (ifVersion != 0 && ifVersion != cur.Version) {
		m.conflict = false
		return nil, subscription.ErrConflict
	}
	c := *cur
	if err := change(&c); err != nil {
		return nil, err
	}
	subscription.ApplyDefaults(&c)
	if err := subscription.Validate(&c); err != nil {
		return nil, err
	}
	c.Version++
	c.UpdatedAt = time.Now().UTC()
	m.subs[id] = &c
	out := c
	return &out, nil
}

func (m *memStore) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subs[id]; !ok {
		return subscription.ErrNotFound
	}
	delete(m.subs, id)
	return nil
}

func (m *memStore) RotateSecret(_ context.Context, id string, _ time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subs[id]; !ok {
		return "", subscription.ErrNotFound
	}
	return newSecret(), nil
}

func (m *memStore) Get(id string) (*subscription.Subscription, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.subs[id]
	if !ok {
		return nil, false
	}
	c := *s
	return &c, true
}

func (m *memStore) List() []*subscription.Subscription {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*subscription.Subscription, 0, len(m.subs))
	for _, s := range m.subs {
		c := *s
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *subscription.Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out
}
