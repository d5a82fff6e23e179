package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvKafka names the variable holding comma-separated bootstrap addresses of
// a real broker. When it is empty, Kafka starts an embedded one.
const EnvKafka = "HERALD_TEST_KAFKA"

// adminTimeout bounds each admin call; a real broker answers in milliseconds,
// so hitting it means the broker is gone.
const adminTimeout = 30 * time.Second

// metadataMinAge replaces kgo's 5s default, which is also how long kadm
// reuses a metadata answer: a test that just created or deleted a topic
// must see it in the next ListTopics, not in five seconds.
const metadataMinAge = 50 * time.Millisecond

// Real reports whether Kafka returns a real broker (HERALD_TEST_KAFKA is set)
// rather than an embedded kfake cluster. Tests that depend on behaviour kfake
// does not have can t.Skip when it is false.
func Real() bool { return os.Getenv(EnvKafka) != "" }

// Kafka returns bootstrap addresses for the test: those in HERALD_TEST_KAFKA
// when set, else those of a one-broker kfake cluster closed when the test
// ends. Neither creates topics on its own: create them with CreateTopic (or
// let herald create its own through kadm).
func Kafka(t testing.TB) []string {
	t.Helper()
	if Real() {
		brokers := splitAddrs(os.Getenv(EnvKafka))
		if err := reachable(brokers); err != nil {
			t.Fatalf("testkit: %s=%s: %v (start it with deploy/local/kafka.sh start, or unset it to use kfake)",
				EnvKafka, os.Getenv(EnvKafka), err)
		}
		return brokers
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		// Like the real broker's num.partitions=1; kfake's default is 10.
		kfake.DefaultNumPartitions(1),
	)
	if err != nil {
		t.Fatalf("testkit: starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// reachability is checked once per process and address list: a test run
// against a broker that is down should fail in a second with the reason, not
// after every test's timeout.
var reachability sync.Map // string -> func() error

func reachable(brokers []string) error {
	key := strings.Join(brokers, ",")
	check, _ := reachability.LoadOrStore(key, sync.OnceValue(func() error {
		var errs []error
		for _, b := range brokers {
			conn, err := net.DialTimeout("tcp", b, 5*time.Second)
			if err == nil {
				conn.Close()
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}))
	return check.(func() error)()
}

// Unique returns prefix + "-" + a form of the test's name + "-" + random hex:
// a name no other test, parallel package or earlier run uses. It suits
// consumer groups and transactional ids; for topics use Topic, which also
// cleans up.
func Unique(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return prefix + "-" + nameOf(t) + "-" + hex.EncodeToString(b[:])
}

// nameOf keeps letters and digits of the test's name and turns runs of
// anything else into one '-': valid in topic names, and free of '.' and '_',
// which Kafka treats as colliding.
func nameOf(t testing.TB) string {
	const maxLen = 40
	var sb strings.Builder
	dash := false
	for _, r := range t.Name() {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			sb.WriteRune(r)
			dash = false
		case !dash && sb.Len() > 0:
			sb.WriteByte('-')
			dash = true
		}
		if sb.Len() >= maxLen {
			break
		}
	}
	return strings.TrimRight(sb.String(), "-")
}

// Topic returns a topic name unique to this test and run (see Unique). It
// does not create the topic. On a real broker, the topic is deleted when the
// test ends if anything created it, so shared brokers do not fill up.
func Topic(t testing.TB, prefix string) string {
	t.Helper()
	name := Unique(t, prefix)
	if Real() {
		brokers := splitAddrs(os.Getenv(EnvKafka))
		t.Cleanup(func() { deleteTopics(t, brokers, func(topic string) bool { return topic == name }) })
	}
	return name
}

// TopicPrefix returns a prefix for herald's own topics (HERALD_TOPIC_PREFIX,
// default "herald.") unique to this test, ending in '.', so that tests sharing
// a broker do not share herald.subscriptions or retry tiers. On a real
// broker, every topic starting with it is deleted when the test ends.
func TopicPrefix(t testing.TB) string {
	t.Helper()
	prefix := Unique(t, "h") + "."
	if Real() {
		brokers := splitAddrs(os.Getenv(EnvKafka))
		t.Cleanup(func() { deleteTopics(t, brokers, func(topic string) bool { return strings.HasPrefix(topic, prefix) }) })
	}
	return prefix
}

// deleteTopics deletes the topics matching match. It only logs failures: a
// leftover topic costs disk, not correctness, since names never repeat.
func deleteTopics(t testing.TB, brokers []string, match func(string) bool) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(metadataMinAge))
	if err != nil {
		t.Logf("testkit: deleting topics: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Logf("testkit: deleting topics: %v", err)
		return
	}
	var names []string
	for _, name := range all.Names() {
		if match(name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return
	}
	resp, err := adm.DeleteTopics(ctx, names...)
	if err != nil {
		t.Logf("testkit: deleting topics %v: %v", names, err)
		return
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			t.Logf("testkit: deleting topic %s: %v", r.Topic, r.Err)
		}
	}
}

// CreateTopic creates a topic with one replica and waits until every
// partition has a leader, so producing right away works. On a real broker it
// is deleted when the test ends.
func CreateTopic(t testing.TB, brokers []string, name string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(metadataMinAge))
	if err != nil {
		t.Fatalf("testkit: create topic %s: %v", name, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, name); err != nil {
		t.Fatalf("testkit: create topic %s with %d partitions: %v", name, partitions, err)
	}
	if Real() {
		t.Cleanup(func() { deleteTopics(t, brokers, func(topic string) bool { return topic == name }) })
	}
	for {
		err := topicReady(ctx, adm, name, partitions)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testkit: topic %s created but not ready after %v: %v", name, adminTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func topicReady(ctx context.Context, adm *kadm.Client, name string, partitions int32) error {
	topics, err := adm.ListTopics(ctx, name)
	if err != nil {
		return err
	}
	td, ok := topics[name]
	switch {
	case !ok:
		return errors.New("not in metadata")
	case td.Err != nil:
		return td.Err
	case int32(len(td.Partitions)) != partitions:
		return fmt.Errorf("metadata shows %d partitions", len(td.Partitions))
	}
	for _, p := range td.Partitions {
		if p.Err != nil {
			return fmt.Errorf("partition %d: %w", p.Partition, p.Err)
		}
		if p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return nil
}

// Client returns a franz-go client seeded with brokers, closed when the test
// ends. Its MetadataMinAge is 50ms rather than 5s, so that kadm.NewClient(cl)
// sees topics created or deleted a moment ago. opts come after these and can
// override anything.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	// A topic herald has just created may still be electing its leaders
	// when a test produces to it: keep retrying (Produce bounds the wait)
	// rather than failing after franz-go's default four tries.
	base := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(metadataMinAge), kgo.UnknownTopicRetries(-1)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("testkit: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Produce writes recs synchronously and fails the test if any of them was
// not acknowledged within 30s. On return, each record has its partition,
// offset and timestamp set.
func Produce(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("testkit: produce %d records: %v", len(recs), err)
	}
}
