package retry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Retention of herald's retry and dead-letter topics: a tier keeps its
// records ten times its delay and at least a week, so a consumer that was
// down for a while still finds them; dead letters wait a month for replay.
const (
	MinTierRetention = 7 * 24 * time.Hour
	DLQRetention     = 30 * 24 * time.Hour
)

// TopicConfigs returns every tier topic and the dead-letter topic with the
// configs they are created with.
func TopicConfigs(prefix string, tiers []time.Duration) map[string]map[string]*string {
	out := make(map[string]map[string]*string, len(tiers)+1)
	for _, t := range tiers {
		out[TopicName(prefix, t)] = deleteConfigs(max(10*t, MinTierRetention))
	}
	out[DLQTopic(prefix)] = deleteConfigs(DLQRetention)
	return out
}

func deleteConfigs(retention time.Duration) map[string]*string {
	return map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete"),
		"retention.ms":   kadm.StringPtr(strconv.FormatInt(retention.Milliseconds(), 10)),
	}
}

// EnsureTopics creates the tier topics and herald.dlq that do not exist yet,
// with partitions partitions (-1: the broker's default) and the broker's
// default replication. Topics that exist are left as they are. When the
// cluster refuses creation, the error names the missing topics.
func EnsureTopics(ctx context.Context, adm *kadm.Client, prefix string, tiers []time.Duration, partitions int32) error {
	want := TopicConfigs(prefix, tiers)
	missing, err := missingTopics(ctx, adm, want)
	if err != nil || len(missing) == 0 {
		return err
	}
	var denied []string
	var errs []error
	for _, topic := range missing {
		_, err := adm.CreateTopic(ctx, partitions, -1, want[topic], topic)
		switch {
		case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
		case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
			errors.Is(err, kerr.PolicyViolation):
			denied = append(denied, topic)
			errs = append(errs, err)
		default:
			errs = append(errs, fmt.Errorf("create %s: %w", topic, err))
		}
	}
	if len(denied) > 0 {
		return fmt.Errorf("retry: topics %s are missing and the cluster does not let herald create them (%w); "+
			"create them with `herald topics create` under an account that may, or by hand", strings.Join(denied, ", "), errors.Join(errs...))
	}
	if len(errs) > 0 {
		return fmt.Errorf("retry: creating topics: %w", errors.Join(errs...))
	}
	return nil
}

// CheckTopics fails, naming them, when tier or dead-letter topics are
// missing: the start-up check when herald may not create topics itself.
func CheckTopics(ctx context.Context, adm *kadm.Client, prefix string, tiers []time.Duration) error {
	missing, err := missingTopics(ctx, adm, TopicConfigs(prefix, tiers))
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("retry: topics %s are missing; run `herald topics create` or allow topic creation at start-up",
			strings.Join(missing, ", "))
	}
	return nil
}

func missingTopics(ctx context.Context, adm *kadm.Client, want map[string]map[string]*string) ([]string, error) {
	names := make([]string, 0, len(want))
	for t := range want {
		names = append(names, t)
	}
	// WithAuthorizedOps makes kadm skip the client's metadata cache, which
	// can still hold a just-created topic as unknown.
	details, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...)
	if err != nil {
		return nil, fmt.Errorf("retry: listing topics: %w", err)
	}
	var missing []string
	for _, t := range names {
		if !details.Has(t) {
			missing = append(missing, t)
		}
	}
	slices.Sort(missing)
	return missing, nil
}
