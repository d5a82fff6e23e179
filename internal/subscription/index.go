package subscription

import (
	"slices"
	"strings"
	"sync"
)

// Index finds the subscriptions an event matches without looking at the
// others: subscriptions are filed by topic, then by event-type pattern, so a
// lookup costs a few map reads plus one per dot in the event type, and
// grows with the number of matches, not with the number of subscriptions.
// It is safe for concurrent use; Add and Remove change only the buckets of
// the subscription concerned.
type Index struct {
	mu       sync.RWMutex
	byID     map[string]*Subscription
	byTopic  map[string]*bucket
	anyTopic bucket // subscriptions with no topics: every source topic
}

// bucket holds the subscriptions of one topic by pattern. After normalising
// a subscription's patterns (see patterns), at most one of them matches any
// type, so a subscription appears at most once in a Match result.
type bucket struct {
	exact  map[string][]*Subscription // "order.created"
	prefix map[string][]*Subscription // "order" for "order.*"
	any    []*Subscription            // "*" or no event types
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byID: make(map[string]*Subscription), byTopic: make(map[string]*bucket)}
}

// Len returns the number of subscriptions in the index.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// Add files s, replacing any subscription with the same ID. s must not be
// changed afterwards.
func (x *Index) Add(s *Subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.byID[s.ID]; ok {
		x.remove(old)
	}
	x.byID[s.ID] = s
	x.each(s, func(b *bucket, kind patternKind, key string) {
		switch kind {
		case anyType:
			b.any = append(b.any, s)
		case exactType:
			if b.exact == nil {
				b.exact = make(map[string][]*Subscription)
			}
			b.exact[key] = append(b.exact[key], s)
		case prefixType:
			if b.prefix == nil {
				b.prefix = make(map[string][]*Subscription)
			}
			b.prefix[key] = append(b.prefix[key], s)
		}
	}, true)
}

// Remove drops the subscription with this ID, if any.
func (x *Index) Remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.byID[id]; ok {
		x.remove(old)
	}
}

func (x *Index) remove(s *Subscription) {
	delete(x.byID, s.ID)
	x.each(s, func(b *bucket, kind patternKind, key string) {
		switch kind {
		case anyType:
			b.any = without(b.any, s)
		case exactType:
			if l := without(b.exact[key], s); len(l) > 0 {
				b.exact[key] = l
			} else {
				delete(b.exact, key)
			}
		case prefixType:
			if l := without(b.prefix[key], s); len(l) > 0 {
				b.prefix[key] = l
			} else {
				delete(b.prefix, key)
			}
		}
	}, false)
	for _, t := range s.Topics {
		if b := x.byTopic[t]; b != nil && b.empty() {
			delete(x.byTopic, t)
		}
	}
}

// without removes s from l in place. Removal scans one bucket; subscriptions
// change at admin speed, events arrive at Kafka speed, so Match is what is
// kept cheap.
func without(l []*Subscription, s *Subscription) []*Subscription {
	for i, e := range l {
		if e == s {
			last := len(l) - 1
			copy(l[i:], l[i+1:])
			l[last] = nil // let the removed snapshot be collected
			return l[:last]
		}
	}
	return l
}

func (b *bucket) empty() bool {
	return len(b.exact) == 0 && len(b.prefix) == 0 && len(b.any) == 0
}

// each calls fn for every (bucket, pattern) s is filed under. With create,
// missing topic buckets are made.
func (x *Index) each(s *Subscription, fn func(*bucket, patternKind, string), create bool) {
	var buckets []*bucket
	if len(s.Topics) == 0 {
		buckets = []*bucket{&x.anyTopic}
	} else {
		for i, t := range s.Topics {
			if slices.Contains(s.Topics[:i], t) {
				continue
			}
			b := x.byTopic[t]
			if b == nil {
				if !create {
					continue
				}
				b = new(bucket)
				x.byTopic[t] = b
			}
			buckets = append(buckets, b)
		}
	}
	pats := patterns(s.EventTypes)
	for _, b := range buckets {
		for _, p := range pats {
			fn(b, p.kind, p.key)
		}
	}
}

type patternKind uint8

const (
	exactType patternKind = iota
	prefixType
	anyType
)

type pattern struct {
	kind patternKind
	key  string // the type, or the prefix without ".*"
}

// patterns parses event-type patterns and drops those another one covers
// ("order.created" under "order.*", "order.item.*" under "order.*",
// duplicates), so that no event matches a subscription twice.
func patterns(types []string) []pattern {
	if len(types) == 0 || slices.Contains(types, "*") {
		return []pattern{{kind: anyType}}
	}
	var prefixes []string
	for _, t := range types {
		if p, ok := strings.CutSuffix(t, ".*"); ok {
			prefixes = append(prefixes, p)
		}
	}
	covered := func(s string, self int) bool {
		for i, p := range prefixes {
			if i != self && strings.HasPrefix(s, p+".") {
				return true
			}
		}
		return false
	}
	var out []pattern
	for i, p := range prefixes {
		if !covered(p, i) && !slices.Contains(prefixes[:i], p) {
			out = append(out, pattern{kind: prefixType, key: p})
		}
	}
	for i, t := range types {
		if !strings.HasSuffix(t, ".*") && !covered(t, -1) && !slices.Contains(types[:i], t) {
			out = append(out, pattern{kind: exactType, key: t})
		}
	}
	return out
}

// Match returns the subscriptions, whatever their status, whose topics and
// event types cover an event of this type on this topic, in no particular
// order. It allocates only the result, and nothing when nothing matches.
func (x *Index) Match(topic, eventType string) []*Subscription {
	x.mu.RLock()
	defer x.mu.RUnlock()
	tb := x.byTopic[topic]
	n := x.anyTopic.count(eventType)
	if tb != nil {
		n += tb.count(eventType)
	}
	if n == 0 {
		return nil
	}
	out := make([]*Subscription, 0, n)
	out = x.anyTopic.appendMatches(out, eventType)
	if tb != nil {
		out = tb.appendMatches(out, eventType)
	}
	return out
}

// count and appendMatches walk the same lists; counting first sizes the
// result exactly, so a match costs one allocation.
func (b *bucket) count(eventType string) int {
	n := len(b.any) + len(b.exact[eventType])
	if len(b.prefix) > 0 {
		for i := 0; i < len(eventType); i++ {
			if eventType[i] == '.' {
				n += len(b.prefix[eventType[:i]])
			}
		}
	}
	return n
}

func (b *bucket) appendMatches(out []*Subscription, eventType string) []*Subscription {
	out = append(out, b.any...)
	out = append(out, b.exact[eventType]...)
	if len(b.prefix) > 0 {
		for i := 0; i < len(eventType); i++ {
			if eventType[i] == '.' {
				out = append(out, b.prefix[eventType[:i]]...)
			}
		}
	}
	return out
}
