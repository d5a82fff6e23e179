package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/kafka"
)

// services are the Kafka and Redis of a run: the ones given, or embedded.
type services struct {
	brokers   []string
	redisURL  string
	kafkaDesc string
	redisDesc string

	admCl *kgo.Client
	adm   *kadm.Client
	stops []func()
}

func startServices(brokers []string, redisURL string, partitions int) (*services, error) {
	s := &services{brokers: brokers, redisURL: redisURL}
	if len(brokers) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(partitions))
		if err != nil {
			return nil, fmt.Errorf("embedded Kafka: %w", err)
		}
		s.stops = append(s.stops, c.Close)
		s.brokers = c.ListenAddrs()
		s.kafkaDesc = "embedded kfake " + strings.Join(s.brokers, ",")
	} else {
		s.kafkaDesc = "Kafka " + strings.Join(brokers, ",")
	}
	if redisURL == "" {
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			s.close()
			return nil, fmt.Errorf("embedded Redis: %w", err)
		}
		s.stops = append(s.stops, m.Close)
		s.redisURL = "redis://" + m.Addr() + "/0"
		s.redisDesc = "embedded miniredis " + m.Addr()
	} else {
		s.redisDesc = "Redis " + redisURL
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		s.close()
		return nil, err
	}
	s.admCl, s.adm = cl, kadm.NewClient(cl)
	return s, nil
}

func (s *services) close() {
	if s.admCl != nil {
		s.admCl.Close()
	}
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// createTopic creates a topic and waits until every partition has a leader,
// so that producing to it right away does not race its creation.
func (s *services) createTopic(ctx context.Context, name string, partitions int) error {
	resp, err := s.adm.CreateTopic(ctx, int32(partitions), 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating topic %s: %w", name, err)
	}
	return s.waitTopic(ctx, name, partitions)
}

// waitTopic waits until every partition of a topic has a leader.
func (s *services) waitTopic(ctx context.Context, name string, partitions int) error {
	for {
		md, err := s.adm.Metadata(ctx, name)
		if err == nil {
			if t, ok := md.Topics[name]; ok && t.Err == nil && len(t.Partitions) == partitions {
				ready := true
				for _, p := range t.Partitions {
					if p.Leader < 0 || p.Err != nil {
						ready = false
					}
				}
				if ready {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no leaders yet: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deleteTopicsWithPrefix removes the topics a scenario created, herald's own
// included, except keep, so a run leaves nothing behind on a real broker.
func (s *services) deleteTopicsWithPrefix(prefix string, keep ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics, err := s.adm.ListTopics(ctx)
	if err != nil {
		return
	}
	var names []string
	for _, t := range topics.Sorted() {
		if strings.HasPrefix(t.Topic, prefix) && !slices.Contains(keep, t.Topic) {
			names = append(names, t.Topic)
		}
	}
	if len(names) > 0 {
		_, _ = s.adm.DeleteTopics(ctx, names...)
	}
}

// cleanup deletes the topics of this run but the throughput events, which
// the memory scenario reads again.
func (r *runner) cleanup() {
	r.svc.deleteTopicsWithPrefix("bench-"+r.id+"-", r.throughputTopic)
}

// cleanupAll deletes every topic of this run.
func (r *runner) cleanupAll() {
	r.svc.deleteTopicsWithPrefix("bench-" + r.id + "-")
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("0102t1504") + "-" + hex.EncodeToString(b)
}

// cpuAndMemory reads the CPU model and total memory from /proc, where it
// exists.
func cpuAndMemory() (model string, memMB int) {
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if kb, ok := procField("/proc/meminfo", "MemTotal"); ok {
		memMB = int(kb / 1024)
	}
	return model, memMB
}

// procField reads a "Name:   123 kB" line of a /proc file, in kB.
func procField(path, name string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// tierRecords counts the records in herald's retry tier topics of cfg.
func (s *services) tierRecords(cfg config.Config) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics := kafka.Topics{Prefix: cfg.Topics.Prefix}
	var names []string
	for _, t := range cfg.Retry.Tiers {
		names = append(names, topics.Retry(t))
	}
	ends, err := s.adm.ListEndOffsets(ctx, names...)
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

// waitGroups waits until each consumer group is stable with every member
// assigned partitions.
func (s *services) waitGroups(ctx context.Context, groups ...string) error {
	for {
		described, err := s.adm.DescribeGroups(ctx, groups...)
		if err == nil {
			stable := true
			for _, g := range groups {
				d, ok := described[g]
				if !ok || d.Err != nil || d.State != "Stable" || len(d.Members) == 0 {
					stable = false
					break
				}
				for _, m := range d.Members {
					if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 {
						stable = false
					}
				}
			}
			if stable {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer groups %v not stable: %w", groups, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
