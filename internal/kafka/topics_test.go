package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/herald-dev/herald/internal/config"
)

func TestTopicNames(t *testing.T) {
	def := Topics{Prefix: config.Default().Topics.Prefix}
	tests := []struct{ got, want string }{
		{def.Subscriptions(), "herald.subscriptions"},
		{def.Outcomes(), "herald.outcomes"},
		{def.DLQ(), "herald.dlq"},
		{def.Retry(10 * time.Second), "herald.retry.10s"},
		{def.Retry(time.Minute), "herald.retry.1m"},
		{def.Retry(10 * time.Minute), "herald.retry.10m"},
		{def.Retry(time.Hour), "herald.retry.1h"},
		{def.Retry(6 * time.Hour), "herald.retry.6h"},
		{def.Retry(500 * time.Millisecond), "herald.retry.500ms"},
		{def.Retry(90 * time.Second), "herald.retry.90s"},
		{def.Retry(36 * time.Hour), "herald.retry.36h"},
		{Topics{Prefix: "acme-"}.DLQ(), "acme-dlq"},
		{Topics{}.Retry(time.Minute), "retry.1m"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	all := def.All([]time.Duration{10 * time.Second, time.Minute})
	want := []string{"herald.subscriptions", "herald.outcomes", "herald.dlq", "herald.retry.10s", "herald.retry.1m"}
	if !slices.Equal(all, want) {
		t.Errorf("All() = %v", all)
	}
}

func TestTopicsExist(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "herald.dlq", "herald.outcomes"))
	cl, err := NewClient(config.Kafka{Brokers: c.ListenAddrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testContext(t, 10*time.Second)

	missing, err := TopicsExist(ctx, adm, "herald.subscriptions", "herald.dlq", "herald.retry.10s", "herald.outcomes")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"herald.subscriptions", "herald.retry.10s"}; !slices.Equal(missing, want) {
		t.Errorf("missing = %v, want %v", missing, want)
	}

	// No names means nothing to check, not "list every topic".
	missing, err = TopicsExist(ctx, adm)
	if err != nil || missing != nil {
		t.Errorf("TopicsExist() = %v, %v", missing, err)
	}

	missing, err = TopicsExist(ctx, adm, "herald.dlq")
	if err != nil || len(missing) != 0 {
		t.Errorf("TopicsExist(existing) = %v, %v", missing, err)
	}
}

func TestUntilKnownWaitsForTheTopic(t *testing.T) {
	calls := 0
	err := UntilKnown(context.Background(), func(context.Context) error {
		calls++
		if calls < 3 {
			return fmt.Errorf("describe: %w", kerr.UnknownTopicOrPartition)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("UntilKnown = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestUntilKnownReturnsOtherErrorsAtOnce(t *testing.T) {
	calls := 0
	err := UntilKnown(context.Background(), func(context.Context) error {
		calls++
		return kerr.TopicAuthorizationFailed
	})
	if !errors.Is(err, kerr.TopicAuthorizationFailed) || calls != 1 {
		t.Fatalf("UntilKnown = %v after %d calls, want TOPIC_AUTHORIZATION_FAILED after 1", err, calls)
	}
}

func TestUntilKnownStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := UntilKnown(ctx, func(context.Context) error { return kerr.UnknownTopicOrPartition })
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("UntilKnown = %v, want the last UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	if ctx.Err() == nil {
		t.Fatal("UntilKnown returned before its context ended")
	}
}
