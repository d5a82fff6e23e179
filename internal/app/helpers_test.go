package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/app"
	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
)

// newRetryEnv is newEnv with its own topic prefix, whose topics a real
// broker deletes when the test ends, and the given retry tiers.
func newRetryEnv(t *testing.T, partitions int32, tiers ...time.Duration) *env {
	t.Helper()
	e := newEnv(t, partitions)
	e.cfg.Topics.Prefix = testkit.TopicPrefix(t)
	if len(tiers) > 0 {
		e.cfg.Retry.Tiers = config.Durations(tiers)
	}
	return e
}

// outcomeLog keeps every outcome an instance's attempt path observed, in
// the order the attempts finished.
type outcomeLog struct {
	mu   sync.Mutex
	recs []outcome.Record
}

func (l *outcomeLog) add(r *outcome.Record) {
	l.mu.Lock()
	l.recs = append(l.recs, *r)
	l.mu.Unlock()
}

// all returns the outcomes seen so far that pass keep (nil keeps all).
func (l *outcomeLog) all(keep func(outcome.Record) bool) []outcome.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []outcome.Record
	for _, r := range l.recs {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func (l *outcomeLog) count(keep func(outcome.Record) bool) int { return len(l.all(keep)) }

// startLogged is env.start with every observed outcome kept in log.
func (e *env) startLogged(log *outcomeLog) *instance {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan *app.App, 1)
	go func() {
		in.done <- app.Run(ctx, e.cfg, app.Options{
			OnReady: func(a *app.App) { ready <- a },
			Observe: func(_ context.Context, _ *dispatch.Job, r *outcome.Record) {
				if r.State == outcome.Delivered {
					in.delivered.Add(1)
				}
				log.add(r)
			},
		})
	}()
	select {
	case in.app = <-ready:
	case err := <-in.done:
		e.t.Fatalf("herald stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		e.t.Fatal("herald not ready after 60s")
	}
	e.t.Cleanup(func() { in.stop(e.t) })
	return in
}

// subscribeWith creates a subscription to the env's source topic for every
// event type, with change applied to it first.
func (e *env) subscribeWith(in *instance, recv *testkit.Receiver, path string, change func(*subscription.Subscription)) (*subscription.Subscription, *webhook.Verifier) {
	e.t.Helper()
	s := &subscription.Subscription{URL: recv.URL() + path, Topics: []string{e.source}}
	if change != nil {
		change(s)
	}
	sub, secret, err := in.app.Subscriptions().Create(context.Background(), s)
	if err != nil {
		e.t.Fatalf("create subscription: %v", err)
	}
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return sub, v
}

// outcomeList reads the outcome topic from the start until want records
// pass keep, and returns those in topic order: the records of one delivery
// share a partition, so they are in the order they were written.
func outcomeList(t *testing.T, e *env, keep func(outcome.Record) bool, want int) []outcome.Record {
	t.Helper()
	cl := testkit.Client(t, e.brokers, kgo.ConsumeTopics(e.cfg.Topics.Prefix+"outcomes"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []outcome.Record
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("read %d matching outcome records, want %d: %+v", len(got), want, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(rec *kgo.Record) {
			var r outcome.Record
			if err := json.Unmarshal(rec.Value, &r); err != nil {
				t.Fatalf("outcome is not JSON: %v", err)
			}
			if keep(r) {
				got = append(got, r)
			}
		})
	}
	return got
}

// tierRecord is one record of a retry tier topic, its headers parsed.
type tierRecord struct {
	topic   string
	headers retry.Headers
	at      time.Time // the broker's timestamp
}

// tierRecords reads every tier topic from the start until want records pass
// keep, and returns those.
func tierRecords(t *testing.T, e *env, keep func(tierRecord) bool, want int) []tierRecord {
	t.Helper()
	var topics []string
	for _, d := range e.cfg.Retry.Tiers {
		topics = append(topics, retry.TopicName(e.cfg.Topics.Prefix, d))
	}
	cl := testkit.Client(t, e.brokers, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []tierRecord
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("read %d matching retry records, want %d", len(got), want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(rec *kgo.Record) {
			h, err := retry.ParseHeaders(rec.Headers)
			if err != nil {
				return
			}
			if tr := (tierRecord{topic: rec.Topic, headers: h, at: rec.Timestamp}); keep(tr) {
				got = append(got, tr)
			}
		})
	}
	return got
}

// admin returns a plain client of the env's broker and its admin client.
func (e *env) admin() (*kgo.Client, *kadm.Client) {
	cl := testkit.Client(e.t, e.brokers)
	return cl, kadm.NewClient(cl)
}

// waitDLQ waits until herald.dlq holds want entries that match f, and
// returns them.
func (e *env) waitDLQ(f dlq.Filter, want int) []dlq.Entry {
	e.t.Helper()
	cl := testkit.Client(e.t, e.brokers)
	var got []dlq.Entry
	testkit.Eventually(e.t, 60*time.Second, func() bool {
		var err error
		got, err = dlq.List(context.Background(), cl, e.cfg.Topics.Prefix+"dlq", f)
		if err != nil {
			e.t.Logf("listing dead letters: %v", err)
			return false
		}
		return len(got) >= want
	}, "%d dead letters matching %+v", want, f)
	return got
}

// producer is a retry.Producer on the env's tiers, for replays.
func (e *env) producer() *retry.Producer {
	e.t.Helper()
	s, err := retry.NewSchedule(e.cfg.Retry.Tiers...)
	if err != nil {
		e.t.Fatal(err)
	}
	return retry.NewProducer(testkit.Client(e.t, e.brokers), s, retry.WithPrefix(e.cfg.Topics.Prefix))
}

// waitGroupStable waits until group has members members, each owning
// partitions.
func (e *env) waitGroupStable(group string, members int) {
	e.t.Helper()
	_, adm := e.admin()
	testkit.Eventually(e.t, 60*time.Second, func() bool {
		groups, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g := groups[group]
		if g.State != "Stable" || len(g.Members) != members {
			return false
		}
		for _, m := range g.Members {
			assigned, ok := m.Assigned.AsConsumer()
			if !ok || len(assigned.Topics) == 0 {
				return false
			}
		}
		return true
	}, "group %s stable with %d members owning partitions", group, members)
}

// waitCommitted waits until the dispatcher's group has committed the end of
// every partition of the source topic: herald has passed every event.
func (e *env) waitCommitted() {
	e.t.Helper()
	_, adm := e.admin()
	testkit.Eventually(e.t, 60*time.Second, func() bool {
		ctx := context.Background()
		ends, err := adm.ListEndOffsets(ctx, e.source)
		if err != nil {
			return false
		}
		committed, err := adm.FetchOffsets(ctx, e.cfg.Kafka.Group)
		if err != nil {
			return false
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := committed.Lookup(e.source, o.Partition)
			if o.Offset > 0 && (!ok || c.At < o.Offset) {
				done = false
			}
		})
		return done
	}, "group %s committed the end of %s", e.cfg.Kafka.Group, e.source)
}

// webhookIDs returns the webhook-id of each request, in order of arrival.
func webhookIDs(reqs []testkit.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Header.Get(webhook.HeaderID)
	}
	return out
}

func onPath(reqs []testkit.Request, path string) []testkit.Request {
	return slices.DeleteFunc(slices.Clone(reqs), func(r testkit.Request) bool { return r.Path != path })
}

// waitRequests waits until recv has at least n requests and reports whether
// it got them within timeout, so that the caller can explain a shortfall.
func waitRequests(recv *testkit.Receiver, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for recv.Count() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// logOutcomesOf logs every outcome written so far for the deliveries ids
// names: what happened to deliveries that did not arrive.
func logOutcomesOf(t *testing.T, e *env, ids map[string]bool) {
	t.Helper()
	cl, adm := e.admin()
	topic := e.cfg.Topics.Prefix + "outcomes"
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Logf("outcomes: %v", err)
		return
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl.AddConsumeTopics(topic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(left) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset >= left[rec.Partition]-1 {
				delete(left, rec.Partition)
			}
			var r outcome.Record
			if json.Unmarshal(rec.Value, &r) == nil && ids[r.DeliveryID] {
				t.Logf("outcome of %s: attempt %d %s %d %q tier %q at %s", r.DeliveryID, r.Attempt, r.State, r.HTTPStatus, r.Error, r.Tier, r.AttemptedAt.Format("15:04:05.000"))
			}
		})
	}
}

// herald runs an admin command in process against the env's deployment,
// as an operator would with its configuration, and returns what it printed
// on standard output.
func (e *env) herald(cmd *cobra.Command, args ...string) (string, error) {
	e.t.Helper()
	e.t.Setenv("HERALD_MASTER_KEY", e.cfg.Secrets.MasterKey)
	return e.execute(cmd, append(args,
		"--kafka-brokers", strings.Join(e.brokers, ","),
		"--topic-prefix", e.cfg.Topics.Prefix,
		"--retry-tiers", e.cfg.Retry.Tiers.String(),
	)...)
}

// heraldClient runs a client command in process against in's admin API.
func (e *env) heraldClient(in *instance, cmd *cobra.Command, args ...string) (string, error) {
	e.t.Helper()
	return e.execute(cmd, append(args, "--server", "http://"+in.app.Addr(), "--token", e.cfg.API.Tokens[0])...)
}

func (e *env) execute(cmd *cobra.Command, args ...string) (string, error) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if errOut.Len() > 0 {
		e.t.Logf("herald %s: stderr: %s", cmd.Name(), errOut.String())
	}
	return out.String(), err
}
