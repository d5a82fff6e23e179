package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
)

func TestParseTimeFlag(t *testing.T) {
	now := time.Date(2024, 5, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"", time.Time{}, ""},
		{"24h", now.Add(-24 * time.Hour), ""},
		{"90m", now.Add(-90 * time.Minute), ""},
		{"2024-05-01T00:00:00Z", time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), ""},
		{"2024-05-01T02:00:00.5+02:00", time.Date(2024, 5, 1, 0, 0, 0, 5e8, time.UTC), ""},
		{"-1h", time.Time{}, "positive"},
		{"0s", time.Time{}, "positive"},
		{"yesterday", time.Time{}, "RFC 3339"},
		{"2024-05-01", time.Time{}, "RFC 3339"},
		{"2025-01-01T00:00:00Z", time.Time{}, "in the future"},
	} {
		got, err := parseTimeFlag("--since", tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--since") {
				t.Errorf("%q: error %v, want one naming --since and saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// replayCluster is an embedded broker with herald's topics and a
// subscription store on them, and the master key the command needs.
type replayCluster struct {
	brokers []string
	store   *subscription.Store
	key     string
}

func newReplayCluster(t *testing.T) *replayCluster {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	err = subscription.EnsureTopic(ctx, adm, "herald.subscriptions")
	if err == nil {
		err = retry.EnsureTopics(ctx, adm, "herald.", retry.DefaultTiers, 1)
	}
	if err == nil {
		_, err = adm.CreateTopic(ctx, 1, 1, nil, "orders")
	}
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}

	key := make([]byte, subscription.MasterKeySize)
	_, _ = rand.Read(key)
	cipher, err := subscription.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	store := subscription.NewStore(brokers, "herald.subscriptions", cipher)
	done := make(chan error, 1)
	go func() { done <- store.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := store.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return &replayCluster{brokers: brokers, store: store, key: base64.StdEncoding.EncodeToString(key)}
}

func (c *replayCluster) subscribe(t *testing.T, s *subscription.Subscription) *subscription.Subscription {
	t.Helper()
	sub, _, err := c.store.Create(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// produce writes records to orders, one per event type, with ce_id and
// ce_type headers.
func (c *replayCluster) produce(t *testing.T, types ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i, typ := range types {
		recs = append(recs, &kgo.Record{Value: []byte(`{}`), Headers: []kgo.RecordHeader{
			{Key: "ce_id", Value: []byte(fmt.Sprintf("evt-%d", i))},
			{Key: "ce_type", Value: []byte(typ)},
		}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// tierRecords returns the delivery ids queued on the first default tier.
func (c *replayCluster) tierRecords(t *testing.T) []string {
	t.Helper()
	topic := retry.TopicName("herald.", retry.DefaultTiers[0])
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	if end.Offset == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}})
	var ids []string
	for int64(len(ids)) < end.Offset {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			h, err := retry.ParseHeaders(r.Headers)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, h.EventID)
		})
	}
	return ids
}

// runReplay runs `herald replay args…` against c, configured by
// HERALD_KAFKA_BROKERS and HERALD_MASTER_KEY as a script would.
func (c *replayCluster) runReplay(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("HERALD_KAFKA_BROKERS", strings.Join(c.brokers, ","))
	t.Setenv("HERALD_MASTER_KEY", c.key)
	return execute(NewReplayCommand(), args...)
}

func execute(cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestReplayQueuesMatchingEvents(t *testing.T) {
	c := newReplayCluster(t)
	sub := c.subscribe(t, &subscription.Subscription{URL: "https://example.com/hook", Topics: []string{"orders"}, EventTypes: []string{"order.*"}})
	c.produce(t, "order.created", "user.signup", "order.paid")

	out, _, err := c.runReplay(t, "--subscription", sub.ID, "--topic", "orders", "--since", "1h")
	if err != nil || strings.TrimSpace(out) != "Queued 2 deliveries of orders for "+sub.ID {
		t.Fatalf("replay: %v; printed %q", err, out)
	}
	if got := c.tierRecords(t); strings.Join(got, ",") != "evt-0,evt-2" {
		t.Fatalf("queued events %v, want the two order.* ones", got)
	}

	// --until before the events: nothing.
	out, _, err = c.runReplay(t, "--subscription", sub.ID, "--topic", "orders", "--since", "2h", "--until", "1h", "-o", "json")
	if err != nil || !strings.Contains(out, `"queued": 0`) {
		t.Fatalf("replay of an empty range: %v; printed %q", err, out)
	}
}

func TestReplayRefuses(t *testing.T) {
	c := newReplayCluster(t)
	orders := c.subscribe(t, &subscription.Subscription{URL: "https://example.com/a", Topics: []string{"orders"}})
	disabled := c.subscribe(t, &subscription.Subscription{URL: "https://example.com/b", Status: subscription.StatusDisabled})
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no since", []string{"--subscription", orders.ID, "--topic", "orders"}, []string{"since"}},
		{"no topic", []string{"--subscription", orders.ID, "--since", "1h"}, []string{"topic"}},
		{"until before since", []string{"--subscription", orders.ID, "--topic", "orders", "--since", "1h", "--until", "2h"}, []string{"--until", "not after"}},
		{"unknown subscription", []string{"--subscription", "sub_nope", "--topic", "orders", "--since", "1h"}, []string{"sub_nope", "not found"}},
		{"other topic", []string{"--subscription", orders.ID, "--topic", "payments", "--since", "1h"}, []string{"does not subscribe to payments"}},
		{"disabled", []string{"--subscription", disabled.ID, "--topic", "orders", "--since", "1h"}, []string{"disabled", "--status active"}},
		{"missing topics", []string{"--subscription", orders.ID, "--topic", "orders", "--since", "1h", "--topic-prefix", "other."}, []string{"other.retry.10s", "topics.prefix"}},
		{"bad output", []string{"--subscription", orders.ID, "--topic", "orders", "--since", "1h", "-o", "yaml"}, []string{"table or json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := c.runReplay(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestReplayNeedsOnlyItsConfig: a backfill reads Kafka and the
// subscriptions; a missing API token or Redis URL, which `herald serve`
// needs, does not stop it, but a missing broker list or master key does.
func TestReplayNeedsOnlyItsConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no brokers", map[string]string{"HERALD_MASTER_KEY": base64.StdEncoding.EncodeToString(make([]byte, 32))}, "kafka.brokers"},
		{"no master key", map[string]string{"HERALD_KAFKA_BROKERS": "127.0.0.1:1"}, "secrets.master_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HERALD_KAFKA_BROKERS", "")
			t.Setenv("HERALD_MASTER_KEY", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, _, err := execute(NewReplayCommand(), "--subscription", "sub_x", "--topic", "orders", "--since", "1h")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
			for _, other := range []string{"api.tokens", "redis.url"} {
				if strings.Contains(err.Error(), other) {
					t.Errorf("error %q names %s, which a backfill does not use", err, other)
				}
			}
		})
	}
}
