package subscription

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/herald-dev/herald/internal/testkit"
)

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
		topic := testkit.Topic(t, fmt.Sprintf("herald.subscriptions.together%d", round))
		testkit.Together(t, instances, func(i int) error { return EnsureTopic(ctx, adms[i], topic) })
	}
}
