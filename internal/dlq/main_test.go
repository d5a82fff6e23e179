package dlq

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/herald-dev/herald/internal/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// kafka starts an embedded cluster for one test.
func kafka(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func newClient(t *testing.T, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setup creates herald's topics with a sub-second first tier and returns a
// producing client (manual partitions) and the retry producer.
func setup(t *testing.T) ([]string, *kgo.Client, *retry.Producer) {
	t.Helper()
	addrs := kafka(t)
	cl := newClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	s, err := retry.ParseSchedule("200ms,1s")
	if err != nil {
		t.Fatal(err)
	}
	if err := retry.EnsureTopics(testContext(t), kadm.NewClient(cl), retry.DefaultPrefix, s.Tiers(), 2); err != nil {
		t.Fatal(err)
	}
	return addrs, cl, retry.NewProducer(cl, s)
}

// readAll returns every record of topic up to the end offsets it finds.
func readAll(t *testing.T, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	cl := newClient(t, addrs)
	spans, err := bounds(testContext(t), kadm.NewClient(cl), topic, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := scan(testContext(t), cl, topic, spans, func(r *kgo.Record) bool {
		out = append(out, r)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
