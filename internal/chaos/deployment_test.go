package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/testkit"
)

// Source partitions: enough for two instances to share the work.
const sourcePartitions = 6

// deployment is one herald deployment of a scenario: its own source topic,
// topic prefix and consumer groups, on the given broker and Redis.
type deployment struct {
	t         *testing.T
	dir       string // logs
	brokers   []string
	redisURL  string
	source    string
	prefix    string
	group     string
	token     string
	masterKey string
	extraEnv  []string
	instances []*instance
	adm       *kadm.Client
}

// newDeployment prepares a deployment on brokers and redisURL; its source
// topic exists when it returns. shared says brokers is the broker every
// test uses, whose topics testkit removes afterwards; a broker of the
// test's own goes away with its data.
func newDeployment(t *testing.T, brokers []string, redisURL string, shared bool) *deployment {
	t.Helper()
	name := testkit.Unique(t, "c")
	d := &deployment{
		t:         t,
		dir:       t.TempDir(),
		brokers:   brokers,
		redisURL:  redisURL,
		source:    name + "-events",
		prefix:    name + ".",
		group:     name + "-group",
		token:     randomToken(),
		masterKey: randomKey(),
		adm:       kadm.NewClient(testkit.Client(t, brokers)),
	}
	if shared {
		d.source = testkit.Topic(t, "c")
		d.prefix = testkit.TopicPrefix(t)
	}
	testkit.CreateTopic(t, brokers, d.source, sourcePartitions)
	t.Cleanup(func() {
		if t.Failed() {
			for _, in := range d.instances {
				t.Logf("--- herald %s (%s), last lines ---\n%s", in.name, in.log, tail(in.log, 25))
			}
		}
		if keep := os.Getenv("HERALD_CHAOS_LOGS"); keep != "" {
			d.keepLogs(filepath.Join(keep, t.Name()))
		}
	})
	return d
}

func (d *deployment) env() []string {
	env := []string{
		"PATH=/usr/bin:/bin",
		"HERALD_KAFKA_BROKERS=" + strings.Join(d.brokers, ","),
		"HERALD_REDIS_URL=" + d.redisURL,
		"HERALD_SOURCE_TOPICS=" + d.source,
		"HERALD_API_TOKENS=" + d.token,
		"HERALD_MASTER_KEY=" + d.masterKey,
		"HERALD_ALLOW_PRIVATE_NETWORKS=true",
		"HERALD_TOPIC_PREFIX=" + d.prefix,
		"HERALD_GROUP=" + d.group,
		"HERALD_KAFKA_RETRY_GROUP=" + d.group + "-retry",
		// Short tiers so that retries finish within a test; ten attempts
		// span about 45s.
		"HERALD_RETRY_TIERS=1s,2s,5s",
		"HERALD_TOPICS_PARTITIONS=4",
		"HERALD_LOG_LEVEL=info",
	}
	return append(env, d.extraEnv...)
}

// expected returns the delivery ids of events first..first+n-1 for sub.
func expected(sub string, n int) map[string]bool {
	want := make(map[string]bool, n)
	for i := range n {
		want[event.DeliveryID(eventID(i), sub)] = true
	}
	return want
}

func eventID(i int) string { return fmt.Sprintf("evt-%06d", i) }

// producer writes the scenario's events in the background, spread over a
// while, through whatever the broker does meanwhile.
type producer struct {
	sent atomic.Int64
	done chan error
}

// produce writes n events over about over, in batches every 100ms.
func (d *deployment) produce(n int, over time.Duration) *producer {
	cl := testkit.Client(d.t, d.brokers, kgo.DefaultProduceTopic(d.source), kgo.ProducerLinger(5*time.Millisecond))
	p := &producer{done: make(chan error, 1)}
	batches := max(int(over/(100*time.Millisecond)), 1)
	per := (n + batches - 1) / batches
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for first := 0; first < n; first += per {
			recs := make([]*kgo.Record, 0, per)
			for i := first; i < min(first+per, n); i++ {
				recs = append(recs, &kgo.Record{
					Key:     []byte(fmt.Sprint(i)),
					Value:   fmt.Appendf(nil, `{"type":"chaos.tick","n":%d}`, i),
					Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(eventID(i))}},
				})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				p.done <- fmt.Errorf("producing events %d..: %w", first, err)
				return
			}
			p.sent.Add(int64(len(recs)))
			<-tick.C
		}
		p.done <- nil
	}()
	return p
}

// wait fails t unless every event was produced.
func (p *producer) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Minute):
		t.Fatal("producer still running after 10 minutes")
	}
}

// waitIdle waits until every id in want was acknowledged and herald has
// nothing left to do: both consumer groups have committed up to the end of
// every partition, twice in a row a second apart, so late duplicates have
// had their chance to arrive. It fails t after limit.
func (d *deployment) waitIdle(r *receiver, want map[string]bool, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	quiet := 0
	for quiet < 2 {
		if time.Now().After(deadline) {
			tl := r.tally(want)
			lag, err := d.lag()
			d.t.Fatalf("not idle after %v: %d of %d acknowledged, lag %d (%v)", limit, tl.acked, tl.expected, lag, err)
		}
		time.Sleep(time.Second)
		if r.count(want) < len(want) {
			quiet = 0
			continue
		}
		if lag, err := d.lag(); err != nil || lag > 0 {
			quiet = 0
			continue
		}
		quiet++
	}
}

// lag is how many records of the source and retry topics herald's groups
// have not committed.
func (d *deployment) lag() (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := d.adm.ListTopics(ctx)
	if err != nil {
		return 0, err
	}
	var retries []string
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, d.prefix+"retry.") {
			retries = append(retries, name)
		}
	}
	var total int64
	for group, names := range map[string][]string{d.group: {d.source}, d.group + "-retry": retries} {
		if len(names) == 0 {
			continue
		}
		ends, err := d.adm.ListEndOffsets(ctx, names...)
		if err != nil {
			return 0, err
		}
		committed, err := d.adm.FetchOffsets(ctx, group)
		if err != nil {
			return 0, err
		}
		ends.Each(func(o kadm.ListedOffset) {
			at := int64(0)
			if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At > 0 {
				at = c.At
			}
			if o.Offset > at {
				total += o.Offset - at
			}
		})
	}
	return total, nil
}

// deadLettered counts the records in herald's dead-letter topic.
func (d *deployment) deadLettered() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := d.adm.ListEndOffsets(ctx, d.prefix+"dlq")
	if err != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n
}

// keepLogs copies the instances' logs into dir (HERALD_CHAOS_LOGS).
func (d *deployment) keepLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Logf("keeping logs: %v", err)
		return
	}
	for _, in := range d.instances {
		b, err := os.ReadFile(in.log)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, in.name+".log"), b, 0o644)
		}
		if err != nil {
			d.t.Logf("keeping the log of %s: %v", in.name, err)
		}
	}
}
