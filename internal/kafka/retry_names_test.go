package kafka_test

import (
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/kafka"
	"github.com/herald-dev/herald/internal/retry"
)

// Topics.Retry and retry.TopicName must agree, or the retry producer and
// topic creation would use different topics. They are two functions only to
// keep internal/kafka free of the delivery pipeline's dependencies.
func TestRetryTopicMatchesRetryPackage(t *testing.T) {
	delays := []time.Duration{
		time.Millisecond, 500 * time.Millisecond, 1500 * time.Millisecond,
		time.Second, 10 * time.Second, 90 * time.Second,
		time.Minute, 10 * time.Minute, 90 * time.Minute,
		time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour,
	}
	for _, prefix := range []string{"herald.", "", "acme-"} {
		topics := kafka.Topics{Prefix: prefix}
		for _, d := range delays {
			if got, want := topics.Retry(d), retry.TopicName(prefix, d); got != want {
				t.Errorf("Topics{%q}.Retry(%v) = %q, retry.TopicName = %q", prefix, d, got, want)
			}
		}
		if got, want := topics.DLQ(), retry.DLQTopic(prefix); got != want {
			t.Errorf("DLQ() = %q, retry.DLQTopic = %q", got, want)
		}
	}
}
