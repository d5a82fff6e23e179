package api

import (
	"context"
	"slices"
	"sync"

	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/history"
	"github.com/herald-dev/herald/internal/ingest"
	"github.com/herald-dev/herald/internal/ratelimit"
	"github.com/herald-dev/herald/internal/subscription"
)

// fakeHistory is History in memory.
type fakeHistory struct {
	mu       sync.Mutex
	attempts map[string][]history.Attempt
	health   map[string]history.Health
	replayed map[string]int
	forgot   []string
}

func (f *fakeHistory) Recent(_ context.Context, sub string, n int) ([]history.Attempt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	as := f.attempts[sub]
	return slices.Clone(as[:min(n, len(as))]), nil
}

func (f *fakeHistory) Health(_ context.Context, subs ...string) (map[string]history.Health, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]history.Health{}
	for _, s := range subs {
		out[s] = f.health[s]
	}
	return out, nil
}

func (f *fakeHistory) Replayed(_ context.Context, counts map[string]int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.replayed == nil {
		f.replayed = map[string]int{}
	}
	for k, v := range counts {
		f.replayed[k] += v
	}
	return nil
}

func (f *fakeHistory) Forget(_ context.Context, sub string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, sub)
	return nil
}

type fakeCircuits map[string]ratelimit.State

func (f fakeCircuits) State(id string) ratelimit.State { return f[id] }

type fakeTester struct {
	res *TestResult
	err error
}

func (f *fakeTester) Test(_ context.Context, sub *subscription.Subscription) (*TestResult, error) {
	if f.err != nil {
		return nil, f.err
	}
	r := *f.res
	return &r, nil
}

// fakeDLQ keeps the filters it was asked for.
type fakeDLQ struct {
	mu       sync.Mutex
	entries  []dlq.Entry
	listed   []dlq.Filter
	replayed []dlq.Filter
}

func (f *fakeDLQ) List(_ context.Context, flt dlq.Filter) ([]dlq.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed = append(f.listed, flt)
	var out []dlq.Entry
	for _, e := range f.entries {
		if flt.SubscriptionID == "" || e.SubscriptionID == flt.SubscriptionID {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeDLQ) Replay(ctx context.Context, flt dlq.Filter) (int, error) {
	es, _ := f.List(ctx, flt)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replayed = append(f.replayed, flt)
	return len(es), nil
}

type fakeIngest struct {
	mu   sync.Mutex
	res  ingest.Result
	err  error
	got  []*ingest.Event
	keys []string
}

func (f *fakeIngest) Publish(_ context.Context, ev *ingest.Event, key string) (ingest.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, ev)
	f.keys = append(f.keys, key)
	return f.res, f.err
}
