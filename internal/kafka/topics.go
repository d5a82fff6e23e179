package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Topics names herald's own topics under Prefix ("herald." by default).
type Topics struct{ Prefix string }

// Subscriptions is the compacted topic of subscription records.
func (t Topics) Subscriptions() string { return t.Prefix + "subscriptions" }

// Outcomes is the topic of one record per attempt and final state.
func (t Topics) Outcomes() string { return t.Prefix + "outcomes" }

// DLQ is the dead-letter topic.
func (t Topics) DLQ() string { return t.Prefix + "dlq" }

// Retry is the tier topic of delay d: herald.retry.10s, .1m, .6h, .500ms.
// The delay is written in the largest unit that divides it (90s, not
// 1m30s), the same as retry.TopicName; a test pins the two together.
func (t Topics) Retry(d time.Duration) string { return t.Prefix + "retry." + formatTier(d) }

// All returns every herald topic for the given retry tiers.
func (t Topics) All(tiers []time.Duration) []string {
	names := []string{t.Subscriptions(), t.Outcomes(), t.DLQ()}
	for _, d := range tiers {
		names = append(names, t.Retry(d))
	}
	return names
}

// formatTier is kept here rather than imported from internal/retry so that
// this low-level package does not depend on the delivery pipeline.
func formatTier(d time.Duration) string {
	units := []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}}
	for _, u := range units {
		if d >= u.d && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// TopicsExist returns the names that do not exist on the cluster, in the
// order given. Any other per-topic error (not authorized, for one) is
// returned as an error naming the topic.
func TopicsExist(ctx context.Context, adm *kadm.Client, names ...string) (missing []string, err error) {
	if len(names) == 0 {
		return nil, nil // ListTopics with no names lists every topic
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("kafka: listing topics: %w", err)
	}
	var errs []error
	for _, name := range names {
		d, ok := details[name]
		switch {
		case !ok, errors.Is(d.Err, kerr.UnknownTopicOrPartition), errors.Is(d.Err, kerr.UnknownTopicID):
			missing = append(missing, name)
		case d.Err != nil:
			errs = append(errs, fmt.Errorf("kafka: topic %s: %w", name, d.Err))
		}
	}
	return missing, errors.Join(errs...)
}

// settleTimeout bounds how long UntilKnown waits for a topic that another
// client has just created to appear in the broker's metadata.
const settleTimeout = 15 * time.Second

// UntilKnown calls check until it returns something other than an unknown
// topic error, for up to 15 s (or until ctx ends), backing off from 50 ms
// to 1 s. It is for a topic that the cluster has just said exists:
// CreateTopics answered TOPIC_ALREADY_EXISTS because another instance
// created it a moment ago, yet the broker answering the next request may
// not have applied that to its metadata and still call it unknown.
func UntilKnown(ctx context.Context, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		err := check(ctx)
		if !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.UnknownTopicID) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
