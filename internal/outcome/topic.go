package outcome

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/herald-dev/herald/internal/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// EnsureTopic creates the outcomes topic with cleanup.policy=delete and the
// broker's default replication; partitions <= 0 takes the broker's default
// count too. An existing topic is left as it is, unless it is compacted:
// compaction would keep only the last attempt of each delivery, so that is
// an error.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	if partitions <= 0 {
		partitions = -1
	}
	policy := "delete"
	_, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"cleanup.policy": &policy}, topic)
	if err == nil {
		return nil
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("outcome: create topic %s: %w", topic, err)
	}
	return kafka.UntilKnown(ctx, func(ctx context.Context) error { return checkTopic(ctx, adm, topic) })
}

func checkTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("outcome: describe topic %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("outcome: describe topic %s: %w", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && strings.Contains(c.MaybeValue(), "compact") {
			return fmt.Errorf("outcome: topic %s has cleanup.policy=%s; outcomes need delete", topic, c.MaybeValue())
		}
	}
	return nil
}
