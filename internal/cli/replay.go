package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/kafka"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
)

// NewReplayCommand returns `herald replay`, which backfills one
// subscription from a source topic's history. It is an admin command: it
// talks to Kafka directly with the configuration `herald serve` reads.
func NewReplayCommand() *cobra.Command {
	var path, subID, topic, since, until, output string
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "replay --subscription ID --topic TOPIC --since TIME [--until TIME]",
		Short: "Backfill a subscription from a source topic's history",
		Long: "Reads TOPIC from the first record at or after --since (found by timestamp) up to --until,\n" +
			"or to the end as it is when the command starts, and queues one delivery per event the\n" +
			"subscription matches in the first retry tier; running herald instances deliver them.\n" +
			"Delivery ids are those of a first attempt, so whatever the subscriber already\n" +
			"acknowledged is suppressed by dedupe and not sent again.\n\n" +
			"TIME is RFC 3339 (2024-05-01T12:00:00Z) or a duration back from now (90m, 24h).\n" +
			"Configuration is read as by `herald serve`: --config, HERALD_* variables, flags.",
		Example: `  herald replay --subscription sub_123 --topic orders --since 24h
  herald replay --subscription sub_123 --topic orders --since 2024-05-01T00:00:00Z --until 2024-05-02T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			loaded, err := loadConfig(cmd, path)
			if err != nil {
				return err
			}
			now := time.Now()
			from, err := parseTimeFlag("--since", since, now)
			if err != nil {
				return err
			}
			to, err := parseTimeFlag("--until", until, now)
			if err != nil {
				return err
			}
			if !to.IsZero() && !to.After(from) {
				return fmt.Errorf("--until %s is not after --since %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
			}
			b := &backfiller{cfg: loaded, errOut: cmd.ErrOrStderr()}
			n, err := b.run(cmdContext(cmd), subID, topic, from, to)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == outputJSON {
				return printJSON(out, map[string]any{
					"subscription_id": subID, "topic": topic, "since": from, "until": nullTime(to), "queued": n,
				})
			}
			_, err = fmt.Fprintf(out, "Queued %d deliveries of %s for %s\n", n, topic, subID)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&path, "config", "c", os.Getenv("HERALD_CONFIG"), "YAML configuration file (env HERALD_CONFIG)")
	fl.StringVar(&subID, "subscription", "", "id of the subscription to backfill (required)")
	fl.StringVar(&topic, "topic", "", "source topic to read (required)")
	fl.StringVar(&since, "since", "", "first record time: RFC 3339 or a duration back from now, e.g. 24h (required)")
	fl.StringVar(&until, "until", "", "end of the records, exclusive: RFC 3339 or a duration back from now (default: the end of the topic now)")
	fl.StringVarP(&output, "output", "o", outputTable, "output format: table or json")
	for _, name := range []string{"subscription", "topic", "since"} {
		_ = cmd.MarkFlagRequired(name)
	}
	// Only the configuration flags a backfill uses; the file and HERALD_*
	// variables still set the rest.
	all := pflag.NewFlagSet("config", pflag.ContinueOnError)
	cfg.BindFlags(all)
	for _, name := range []string{"kafka-brokers", "topic-prefix", "retry-tiers"} {
		fl.AddFlag(all.Lookup(name))
	}
	return cmd
}

// parseTimeFlag reads an RFC 3339 time or a positive duration back from
// now. Empty gives the zero time.
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%s %s: a duration must be positive: how long ago", name, v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time such as 2024-05-01T12:00:00Z or a duration such as 24h", name, v)
	}
	if t.After(now) {
		return time.Time{}, fmt.Errorf("%s %s is in the future", name, v)
	}
	return t, nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// backfiller runs one backfill with a configuration.
type backfiller struct {
	cfg    config.Config
	errOut io.Writer
}

// replayKeys are the configuration sections a backfill uses; the rest
// (sources, API, Redis, delivery) need not be valid for it.
var replayKeys = []string{"kafka.", "secrets.", "topics.", "retry."}

// brokerWait bounds how long the command waits for Kafka to answer.
const brokerWait = 30 * time.Second

func (b *backfiller) validate() error {
	var errs []error
	for _, err := range unjoin(b.cfg.Validate()) {
		var fe *config.FieldError
		if errors.As(err, &fe) && !slices.ContainsFunc(replayKeys, func(k string) bool { return strings.HasPrefix(fe.Key, k) }) {
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func (b *backfiller) run(ctx context.Context, subID, topic string, since, until time.Time) (int, error) {
	if err := b.validate(); err != nil {
		return 0, err
	}
	cfg := b.cfg
	names := kafka.Topics{Prefix: cfg.Topics.Prefix}
	cl, err := kafka.NewClient(cfg.Kafka, zap.NewNop())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	wctx, cancel := context.WithTimeout(ctx, brokerWait)
	err = kafka.WaitForBroker(wctx, cl, zap.NewNop())
	cancel()
	if err != nil {
		return 0, err
	}

	schedule, err := retry.NewSchedule(cfg.Retry.Tiers...)
	if err != nil {
		return 0, fmt.Errorf("config: retry.tiers: %w", err)
	}
	p := retry.NewProducer(cl, schedule, retry.WithPrefix(cfg.Topics.Prefix))
	// A produce to a missing topic waits for it until the context ends:
	// say so at once instead.
	missing, err := kafka.TopicsExist(ctx, adm, p.Topic(schedule.First()), names.Subscriptions())
	if err != nil {
		return 0, err
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("topics %v do not exist: is topics.prefix (%q) the one herald serve runs with?", missing, cfg.Topics.Prefix)
	}

	sub, err := b.subscription(ctx, subID)
	if err != nil {
		return 0, err
	}
	if len(sub.Topics) > 0 && !slices.Contains(sub.Topics, topic) {
		return 0, fmt.Errorf("subscription %s does not subscribe to %s (its topics: %s)", subID, topic, strings.Join(sub.Topics, ","))
	}
	switch sub.Status {
	case subscription.StatusDisabled:
		return 0, fmt.Errorf("subscription %s is disabled, so its deliveries would be dropped: set it active first (herald subs update %s --status active)", subID, subID)
	case subscription.StatusPaused:
		fmt.Fprintf(b.errOut, "Subscription %s is paused: the backfill waits in the retry tiers until it is resumed.\n", subID)
	}
	idx := subscription.NewIndex()
	idx.Add(sub)
	return dlq.Backfill(ctx, cl, adm, dlq.BackfillRequest{
		SubscriptionID: sub.ID,
		Topic:          topic,
		Since:          since,
		Until:          until,
		Match:          func(ev *event.Event) bool { return len(idx.Match(ev.Topic, ev.Type)) > 0 },
		Extractor:      b.extractor(topic),
	}, p)
}

// subscription reads the subscription from the compacted topic, as every
// instance does at start-up.
func (b *backfiller) subscription(ctx context.Context, id string) (*subscription.Subscription, error) {
	cfg := b.cfg
	key, err := cfg.Secrets.Key()
	if err != nil {
		return nil, fmt.Errorf("config: secrets.master_key: %w", err)
	}
	cipher, err := subscription.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("config: secrets.master_key: %w", err)
	}
	topic := kafka.Topics{Prefix: cfg.Topics.Prefix}.Subscriptions()
	store := subscription.NewStore(cfg.Kafka.Brokers, topic, cipher, subscription.WithClientOpts(kafka.SecurityOpts(cfg.Kafka)...))
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- store.Run(sctx) }()
	ready := make(chan error, 1)
	go func() { ready <- store.WaitReady(sctx) }()
	select {
	case err = <-ready:
		stop()
		<-done
	case err = <-done:
		stop()
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading subscriptions from %s: %w", topic, err)
	}
	sub, ok := store.Get(id)
	if !ok {
		return nil, fmt.Errorf("subscription %s not found (%d subscriptions on %s)", id, store.Len(), topic)
	}
	return sub, nil
}

// extractor reads events as the dispatcher reads topic, so that event ids,
// and with them delivery ids, are the ones of a first attempt.
func (b *backfiller) extractor(topic string) *event.Extractor {
	x := &event.Extractor{MaxValueBytes: b.cfg.Delivery.MaxEventBytes}
	for _, s := range b.cfg.Sources {
		if s.Topic == topic {
			x.IDHeader, x.IDField = s.IDHeader, s.IDField
			x.TypeHeader, x.TypeField = s.TypeHeader, s.TypeField
		}
	}
	return x
}
