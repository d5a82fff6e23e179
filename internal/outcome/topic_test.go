package outcome

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/herald-dev/herald/internal/testkit"
)

func TestEnsureTopicIsIdempotent(t *testing.T) {
	seeds := testkit.Kafka(t)
	topic := newTopic(t, seeds) // created once here
	adm := kadm.NewClient(testkit.Client(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := EnsureTopic(ctx, adm, topic, 3); err != nil {
		t.Fatalf("second EnsureTopic: %v", err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	var policy string
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			policy = c.MaybeValue()
		}
	}
	if policy != "delete" {
		t.Fatalf("cleanup.policy = %q, want delete", policy)
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details[topic].Partitions); n != 3 {
		t.Fatalf("%d partitions, want 3", n)
	}
}

// A compacted outcomes topic would keep only each delivery's last attempt.
func TestEnsureTopicRefusesCompactedTopic(t *testing.T) {
	seeds := testkit.Kafka(t)
	adm := kadm.NewClient(testkit.Client(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := testkit.Topic(t, "herald.outcomes.compacted")
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, topic); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(ctx, adm, topic, 1); err == nil {
		t.Fatal("EnsureTopic accepted a compacted topic")
	}
}

// Instances started together race to create the topic: the losers are told
// it exists before the broker they ask next knows it.
func TestEnsureTopicFromInstancesStartedTogether(t *testing.T) {
	seeds := testkit.Kafka(t)
	const instances = 6
	adms := make([]*kadm.Client, instances)
	for i := range adms {
		adms[i] = kadm.NewClient(testkit.Client(t, seeds))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for round := range 4 {
		topic := testkit.Topic(t, fmt.Sprintf("herald.outcomes.together%d", round))
		testkit.Together(t, instances, func(i int) error { return EnsureTopic(ctx, adms[i], topic, 3) })
	}
}
