package bench

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/subscription"
)

// matching is scenario 5: testing.Benchmark of subscription.Index.Match
// with many subscriptions, for events that match none, one and many of
// them, and the same one-match lookup in an index of 1,000 to show that
// cost follows matches, not subscriptions.
func (r *runner) matching(ctx context.Context) (*Matching, error) {
	restore, err := setBenchtime(r.cfg.MatchBenchtime)
	if err != nil {
		return nil, err
	}
	defer restore()

	n := r.cfg.MatchSubscriptions
	big, small := matchIndex(n), matchIndex(1000)
	cases := []struct {
		name, topic, typ string
		x                *subscription.Index
		size             int
	}{
		{"no-match", "topic-3", "tenant4.order.created", big, n},
		{"no-match-unknown-topic", "nope", "tenant3.order.created", big, n},
		{"one-exact", "topic-1", "tenant1.order.created", big, n},
		{"one-prefix", "topic-10", "tenant10.order.shipped", big, n},
		{"shared", "topic-5", "shared.event", big, n},
		{"one-exact", "topic-1", "tenant1.order.created", small, 1000},
	}
	res := &Matching{Subscriptions: n}
	var oneBig, oneSmall, shared float64
	for _, c := range cases {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		matches := len(c.x.Match(c.topic, c.typ))
		br := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.x.Match(c.topic, c.typ)
			}
		})
		mc := MatchCase{
			Name: c.name, Subscriptions: c.size, Matches: matches,
			NsPerOp:     round(float64(br.T.Nanoseconds())/float64(max(br.N, 1)), 1),
			AllocsPerOp: br.AllocsPerOp(), BytesPerOp: br.AllocedBytesPerOp(),
		}
		res.Cases = append(res.Cases, mc)
		switch {
		case c.name == "one-exact" && c.size == n:
			oneBig = mc.NsPerOp
		case c.name == "one-exact":
			oneSmall = mc.NsPerOp
		case c.name == "shared":
			shared = mc.NsPerOp
		}
		r.log.Sugar().Infof("matching: %s among %d: %d matches, %.0f ns/op, %d allocs/op", c.name, c.size, matches, mc.NsPerOp, mc.AllocsPerOp)
	}
	res.SizeRatio = ratio(oneBig, oneSmall)
	res.MatchesRatio = ratio(shared, oneBig)
	return res, nil
}

// matchIndex files n subscriptions over 100 topics (subscription i on
// topic-<i%100>): mostly two exact types of their own tenant, every tenth a
// prefix, every thousandth (all on topic-5) the shared type "shared.event",
// and s9 a catch-all on topic-9 — the shape of internal/subscription's
// BenchmarkMatch.
func matchIndex(n int) *subscription.Index {
	x := subscription.NewIndex()
	for i := range n {
		s := &subscription.Subscription{ID: fmt.Sprintf("s%d", i), Topics: []string{fmt.Sprintf("topic-%d", i%100)}}
		switch {
		case i == 9:
			s.EventTypes = []string{"*"}
		case i%1000 == 5:
			s.EventTypes = []string{"shared.event"}
		case i%10 == 0:
			s.EventTypes = []string{fmt.Sprintf("tenant%d.order.*", i)}
		default:
			s.EventTypes = []string{fmt.Sprintf("tenant%d.order.created", i), fmt.Sprintf("tenant%d.order.deleted", i)}
		}
		x.Add(s)
	}
	return x
}

// setBenchtime sets testing's -test.benchtime for testing.Benchmark, which
// reads nothing else, and returns what restores it.
func setBenchtime(d time.Duration) (func(), error) {
	testing.Init()
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return nil, fmt.Errorf("testing has no benchtime flag")
	}
	old := f.Value.String()
	if err := f.Value.Set(d.String()); err != nil {
		return nil, err
	}
	return func() { _ = f.Value.Set(old) }, nil
}
