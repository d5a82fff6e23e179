package outcome

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/testkit"
)

// newTopic creates a topic of the test's own with EnsureTopic; testkit
// deletes it from a real broker when the test ends.
func newTopic(t testing.TB, seeds []string) string {
	t.Helper()
	topic := testkit.Topic(t, "herald.outcomes")
	adm := kadm.NewClient(testkit.Client(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopic(ctx, adm, topic, 3); err != nil {
		t.Fatal(err)
	}
	return topic
}

// consume reads n records of topic from the start.
func consume(t *testing.T, seeds []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := testkit.Client(t, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(recs), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}
