package subscription

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func sub(id string, topics []string, types ...string) *Subscription {
	return &Subscription{ID: id, Topics: topics, EventTypes: types}
}

func ids(subs []*Subscription) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.ID
	}
	slices.Sort(out)
	return out
}

func TestIndexMatch(t *testing.T) {
	x := NewIndex()
	for _, s := range []*Subscription{
		sub("exact", []string{"orders"}, "order.created"),
		sub("prefix", []string{"orders"}, "order.*"),
		sub("deep-prefix", []string{"orders"}, "order.item.*"),
		sub("star", []string{"orders"}, "*"),
		sub("no-types", []string{"orders"}),
		sub("all-topics-exact", nil, "order.created"),
		sub("all-topics-all-types", nil),
		sub("two-topics", []string{"orders", "payments"}, "payment.settled", "order.created"),
		sub("bare-word", []string{"orders"}, "order"),
		// Overlapping patterns of one subscription must not match it twice.
		sub("overlap", []string{"orders"}, "order.*", "order.created", "order.item.*"),
		sub("dup-topics", []string{"orders", "orders"}, "order.created"),
	} {
		x.Add(s)
	}
	cases := []struct {
		topic, typ string
		want       []string
	}{
		{"orders", "order.created", []string{"all-topics-all-types", "all-topics-exact", "dup-topics", "exact", "no-types", "overlap", "prefix", "star", "two-topics"}},
		{"orders", "order.shipped", []string{"all-topics-all-types", "no-types", "overlap", "prefix", "star"}},
		{"orders", "order.item.added", []string{"all-topics-all-types", "deep-prefix", "no-types", "overlap", "prefix", "star"}},
		// "order.*" means types starting with "order.", not "order" itself.
		{"orders", "order", []string{"all-topics-all-types", "bare-word", "no-types", "star"}},
		{"orders", "orders.created", []string{"all-topics-all-types", "no-types", "star"}},
		{"orders", "order.", []string{"all-topics-all-types", "no-types", "overlap", "prefix", "star"}},
		{"payments", "payment.settled", []string{"all-topics-all-types", "two-topics"}},
		{"payments", "order.created", []string{"all-topics-all-types", "all-topics-exact", "two-topics"}},
		{"other", "order.created", []string{"all-topics-all-types", "all-topics-exact"}},
		{"other", "x", []string{"all-topics-all-types"}},
		{"orders", "", []string{"all-topics-all-types", "no-types", "star"}},
	}
	for _, c := range cases {
		got := ids(x.Match(c.topic, c.typ))
		if !slices.Equal(got, c.want) {
			t.Errorf("Match(%q, %q) = %v, want %v", c.topic, c.typ, got, c.want)
		}
	}
}

func TestIndexNoMatch(t *testing.T) {
	x := NewIndex()
	x.Add(sub("a", []string{"orders"}, "order.created"))
	x.Add(sub("b", nil, "payment.*"))
	if got := x.Match("orders", "order.deleted"); got != nil {
		t.Errorf("Match = %v, want nil", ids(got))
	}
	if got := x.Match("unknown", "payments.x"); got != nil {
		t.Errorf("Match = %v, want nil", ids(got))
	}
}

func TestIndexAddReplacesAndRemoves(t *testing.T) {
	x := NewIndex()
	x.Add(sub("a", []string{"orders"}, "order.created"))
	x.Add(sub("b", []string{"orders"}, "order.created"))
	x.Add(sub("a", []string{"payments"}, "payment.*")) // a moves

	if got := ids(x.Match("orders", "order.created")); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after moving a: orders match %v, want [b]", got)
	}
	if got := ids(x.Match("payments", "payment.x")); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after moving a: payments match %v, want [a]", got)
	}
	if x.Len() != 2 {
		t.Errorf("Len = %d, want 2", x.Len())
	}
	x.Remove("b")
	x.Remove("b")
	x.Remove("never")
	if got := x.Match("orders", "order.created"); got != nil {
		t.Errorf("after removing b: %v", ids(got))
	}
	if _, ok := x.byTopic["orders"]; ok {
		t.Error("the emptied orders bucket is kept")
	}
	x.Remove("a")
	if x.Len() != 0 || len(x.byTopic) != 0 || !x.anyTopic.empty() {
		t.Errorf("index not empty after removing everything: %d subs, %d topics", x.Len(), len(x.byTopic))
	}
}

func TestIndexMatchResultIsTheCallers(t *testing.T) {
	x := NewIndex()
	x.Add(sub("a", nil))
	x.Add(sub("b", nil))
	got := x.Match("t", "e")
	got[0] = nil
	if again := x.Match("t", "e"); len(again) != 2 || again[0] == nil || again[1] == nil {
		t.Errorf("changing a result changed the index: %v", again)
	}
}

func TestIndexConcurrent(t *testing.T) {
	x := NewIndex()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				id := fmt.Sprintf("w%d-%d", w, i%20)
				x.Add(sub(id, []string{"orders"}, "order.*"))
				if i%3 == 0 {
					x.Remove(id)
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				for _, s := range x.Match("orders", "order.created") {
					if s == nil {
						t.Error("nil in a match")
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// Each writer ends having added its 20 ids, the last third removed.
	n := len(x.Match("orders", "order.created"))
	if n != x.Len() {
		t.Errorf("%d matches but %d subscriptions, all of which match", n, x.Len())
	}
}

// benchIndex holds n subscriptions over 100 topics (subscription i on
// topic-<i%100>): mostly two exact types of their own tenant, every tenth a
// prefix, every thousandth (i%1000 == 5, all on topic-5) a shared type,
// and s9 a catch-all on topic-9.
func benchIndex(n int) *Index {
	x := NewIndex()
	for i := range n {
		id, topic := fmt.Sprintf("s%d", i), []string{fmt.Sprintf("topic-%d", i%100)}
		switch {
		case i == 9:
			x.Add(sub(id, topic, "*"))
		case i%1000 == 5:
			x.Add(sub(id, topic, "shared.event"))
		case i%10 == 0:
			x.Add(sub(id, topic, fmt.Sprintf("tenant%d.order.*", i)))
		default:
			x.Add(sub(id, topic, fmt.Sprintf("tenant%d.order.created", i), fmt.Sprintf("tenant%d.order.deleted", i)))
		}
	}
	return x
}

func BenchmarkMatch(b *testing.B) {
	x := benchIndex(100_000)
	cases := []struct {
		name, topic, typ string
		want             int
	}{
		{"no-match", "topic-3", "tenant4.order.created", 0},
		{"no-match-deep-type", "topic-3", "a.b.c.d.e.f.g.h", 0},
		{"no-match-unknown-topic", "nope", "tenant3.order.created", 0},
		{"one-exact", "topic-1", "tenant1.order.created", 1},
		{"one-prefix", "topic-10", "tenant10.order.shipped", 1},
		{"catch-all", "topic-9", "anything", 1},
		{"hundred", "topic-5", "shared.event", 100},
	}
	for _, c := range cases {
		if n := len(x.Match(c.topic, c.typ)); n != c.want {
			b.Fatalf("%s: %d matches, want %d", c.name, n, c.want)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x.Match(c.topic, c.typ)
			}
		})
	}
	b.Run("parallel-no-match", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				x.Match("topic-3", "tenant4.order.created")
			}
		})
	})
}

func TestMatchCostIndependentOfSize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100,000-subscription index")
	}
	x := benchIndex(100_000)
	if n := testing.AllocsPerRun(100, func() { x.Match("topic-3", "tenant4.order.created") }); n != 0 {
		t.Errorf("a non-matching Match allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { x.Match("topic-5", "shared.event") }); n != 1 {
		t.Errorf("a matching Match allocates %v times, want 1 (the result)", n)
	}
	if got := ids(x.Match("topic-9", "anything.at.all")); !slices.Equal(got, []string{"s9"}) {
		t.Errorf("catch-all match = %v, want [s9]", got)
	}
}
