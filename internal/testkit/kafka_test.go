package testkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafkaEmbeddedWhenUnset(t *testing.T) {
	t.Setenv(EnvKafka, "")
	if Real() {
		t.Fatal("Real() with HERALD_TEST_KAFKA empty")
	}
	rec := newRecorder(t)
	a := Kafka(rec)
	b := Kafka(t)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("want one broker each, got %v and %v", a, b)
	}
	if a[0] == b[0] {
		t.Fatalf("two tests share the embedded cluster at %s", a[0])
	}
	roundTrip(t, b)

	rec.runCleanups()
	if conn, err := net.DialTimeout("tcp", a[0], time.Second); err == nil {
		conn.Close()
		t.Fatalf("embedded cluster at %s still listens after its test ended", a[0])
	}
}

func TestKafkaRealWhenSet(t *testing.T) {
	env := os.Getenv(EnvKafka)
	if env == "" {
		t.Skip("HERALD_TEST_KAFKA not set (make test sets it)")
	}
	brokers := Kafka(t)
	if got := strings.Join(brokers, ","); got != env {
		t.Fatalf("Kafka() = %q, want HERALD_TEST_KAFKA %q", got, env)
	}
	// Only Apache Kafka in KRaft mode reports process.roles; kfake does not.
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil || len(meta.Brokers) == 0 {
		t.Fatalf("broker metadata: %v (%d brokers)", err, len(meta.Brokers))
	}
	id := meta.Brokers[0].NodeID
	rcs, err := adm.DescribeBrokerConfigs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(strconv.Itoa(int(id)), nil)
	if err != nil {
		t.Fatalf("describe broker %d: %v", id, err)
	}
	var roles string
	for _, c := range rc.Configs {
		if c.Key == "process.roles" {
			roles = c.MaybeValue()
		}
	}
	if roles != "broker,controller" {
		t.Fatalf("process.roles = %q, want broker,controller (the deploy/local/kafka.sh broker)", roles)
	}
	roundTrip(t, brokers)
}

func TestKafkaUnreachableFailsFast(t *testing.T) {
	t.Setenv(EnvKafka, "127.0.0.1:1")
	rec := newRecorder(t)
	start := time.Now()
	inGoroutine(func() { Kafka(rec) })
	if !rec.failed() {
		t.Fatal("Kafka did not fail the test with HERALD_TEST_KAFKA pointing at a closed port")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("took %v to notice", d)
	}
}

func TestRoundTrip(t *testing.T) {
	roundTrip(t, Kafka(t))
}

// roundTrip creates a three-partition topic, produces keyed records and
// consumes them back with a consumer group.
func roundTrip(t *testing.T, brokers []string) {
	t.Helper()
	topic := Topic(t, "roundtrip")
	CreateTopic(t, brokers, topic, 3)

	producer := Client(t, brokers, kgo.DefaultProduceTopic(topic))
	const n = 30
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(fmt.Sprintf("v%d", i))}
	}
	Produce(t, producer, recs...)
	lastOffset := map[int32]int64{}
	for _, r := range recs {
		if r.Timestamp.IsZero() {
			t.Fatalf("record %s not acknowledged", r.Value)
		}
		if prev, ok := lastOffset[r.Partition]; ok && r.Offset <= prev {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
		}
		lastOffset[r.Partition] = r.Offset
	}

	consumer := Client(t, brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(Unique(t, "group")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < n {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("v%d", i)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("consumed %v, want %v", got, want)
	}
}

func TestNoAutoCreate(t *testing.T) {
	brokers := Kafka(t)
	topic := Topic(t, "missing")
	cl := Client(t, brokers, kgo.AllowAutoTopicCreation(), kgo.UnknownTopicRetries(2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("producing to a topic nobody created: err = %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has(topic) {
		t.Fatalf("broker auto-created %s", topic)
	}
}

func TestCreateTopicTwiceFails(t *testing.T) {
	brokers := Kafka(t)
	topic := Topic(t, "twice")
	CreateTopic(t, brokers, topic, 2)
	rec := newRecorder(t)
	inGoroutine(func() { CreateTopic(rec, brokers, topic, 2) })
	if !rec.failed() {
		t.Fatal("creating an existing topic did not fail the test")
	}
	rec.runCleanups()
}

var legalTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func TestUnique(t *testing.T) {
	a, b := Unique(t, "x"), Unique(t, "x")
	if a == b {
		t.Fatalf("Unique returned %s twice", a)
	}
	if !strings.HasPrefix(a, "x-TestUnique-") {
		t.Fatalf("Unique = %s, want x-TestUnique-<random>", a)
	}
	t.Run("odd/name with spaces.dots_and_underscores and a very long tail that goes on", func(t *testing.T) {
		name := Topic(t, "p")
		if !legalTopic.MatchString(name) {
			t.Fatalf("Topic = %q: not a legal topic name", name)
		}
		// '.' and '_' collide in Kafka's metric names; keep them out.
		if rest := strings.TrimPrefix(name, "p-"); strings.ContainsAny(rest, "._") {
			t.Fatalf("Topic = %q carries '.' or '_' from the test name", name)
		}
		if len(name) > 60 {
			t.Fatalf("Topic = %q is %d long; herald appends suffixes to names", name, len(name))
		}
	})
	prefix := TopicPrefix(t)
	if !strings.HasSuffix(prefix, ".") || !legalTopic.MatchString(prefix+"retry.10s") {
		t.Fatalf("TopicPrefix = %q", prefix)
	}
}

func TestTopicsDeletedOnRealBroker(t *testing.T) {
	if !Real() {
		t.Skip("embedded clusters disappear with their test")
	}
	brokers := Kafka(t)
	rec := newRecorder(t)
	single := Topic(rec, "gone")
	CreateTopic(rec, brokers, single, 1)
	prefix := TopicPrefix(rec)
	herald := []string{prefix + "subscriptions", prefix + "retry.10s"}
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// As herald would: through kadm, not through testkit.
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, herald...); err != nil {
		t.Fatal(err)
	}
	all := append([]string{single}, herald...)
	Eventually(t, 10*time.Second, func() bool { return countTopics(t, adm, all) == len(all) }, "topics %v created", all)

	rec.runCleanups()
	Eventually(t, 30*time.Second, func() bool { return countTopics(t, adm, all) == 0 }, "topics %v deleted at cleanup", all)
}

func countTopics(t *testing.T, adm *kadm.Client, names []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if topics.Has(name) {
			n++
		}
	}
	return n
}
