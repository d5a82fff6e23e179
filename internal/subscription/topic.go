package subscription

import (
	"context"
	"errors"
	"fmt"

	herkafka "github.com/herald-dev/herald/internal/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// EnsureTopic creates the subscriptions topic if it does not exist: one
// partition (the Store relies on the log being a total order),
// cleanup.policy=compact, replication factor min(3, brokers). If the topic
// exists it checks those two properties that the Store depends on and
// returns an error naming the one that is wrong.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("subscription: listing brokers: %w", err)
	}
	rf := int16(min(3, len(meta.Brokers)))
	if rf < 1 {
		return errors.New("subscription: the cluster reported no brokers")
	}
	_, err = adm.CreateTopic(ctx, 1, rf, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, topic)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return herkafka.UntilKnown(ctx, func(ctx context.Context) error { return checkTopic(ctx, adm, topic) })
	default:
		return fmt.Errorf("subscription: creating topic %q: %w", topic, err)
	}
}

func checkTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	// WithAuthorizedOps makes kadm ask the broker rather than the client's
	// metadata cache, which may still hold the topic as unknown for
	// seconds after another instance created it.
	topics, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), topic)
	if err != nil {
		return fmt.Errorf("subscription: describing topic %q: %w", topic, err)
	}
	td, ok := topics[topic]
	if !ok {
		return fmt.Errorf("subscription: describing topic %q: %w", topic, kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return fmt.Errorf("subscription: describing topic %q: %w", topic, td.Err)
	}
	if n := len(td.Partitions); n != 1 {
		return fmt.Errorf("subscription: topic %q has %d partitions; it must have exactly 1 so that every instance applies changes in the same order", topic, n)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("subscription: describing configs of topic %q: %w", topic, err)
	}
	rc, err := configs.On(topic, nil)
	if err != nil {
		return fmt.Errorf("subscription: describing configs of topic %q: %w", topic, err)
	}
	if rc.Err != nil {
		return fmt.Errorf("subscription: describing configs of topic %q: %w", topic, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.MaybeValue() != "compact" {
			return fmt.Errorf("subscription: topic %q has cleanup.policy=%s; it must be compact, or subscriptions are lost when segments expire", topic, c.MaybeValue())
		}
	}
	return nil
}
