// Package kafka builds herald's franz-go clients from the configuration,
// names herald's own topics and waits for the brokers at start-up.
//
// There is no interface over *kgo.Client: code is tested against kfake or a
// real broker.
package kafka

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/config"
)

// Producer settings of NewClient.
const (
	// Linger trades a little latency for batching: retry hand-offs and
	// outcomes come in bursts.
	Linger = 5 * time.Millisecond
	// OutcomeLinger is the linger of the outcome producer. Outcomes are
	// keyed by delivery id, so they spread over every partition of the
	// topic; at 5ms each partition's batch held a few records, and the
	// broker spent more CPU per delivery on them than herald on sending
	// the webhook. Nobody waits for an outcome record, and 50ms makes
	// batches ten times larger.
	OutcomeLinger = 50 * time.Millisecond
	// ProduceRequestTimeout is how long a broker may wait for in-sync
	// replicas before answering a produce request.
	ProduceRequestTimeout = 10 * time.Second
)

// Connection settings shared by every client.
const (
	// DialTimeout bounds one connection attempt, so an address that drops
	// packets is retried as soon as one that refuses them.
	DialTimeout = 5 * time.Second
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// NewClient returns a client for producing and admin requests, configured
// from cfg: seeds, client id, TLS, SASL, franz-go logs through log at warn
// level and above, and producer defaults suited to hand-offs that must not be
// lost: acks from all in-sync replicas with idempotence, records retried until
// the broker takes them or their context ends, 5ms linger. opts come last and
// override any of these (kgo.WithLogger for another log level, for example).
//
// A broker that is not up yet is not an error: the client connects lazily
// and keeps retrying with a jittered backoff from 100ms to 5s. Use
// WaitForBroker to hold start-up until one answers. A nil log discards logs.
func NewClient(cfg config.Kafka, log *zap.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := clientOpts(cfg)
	if err != nil {
		return nil, err
	}
	base = append(base,
		kgo.WithLogger(Logger(log)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordRetries(math.MaxInt),
		// herald produces only to its own topics, which start-up created
		// or checked: UNKNOWN_TOPIC_OR_PARTITION is a topic still electing
		// its leaders (or a broker restarting), never a reason to drop a
		// retry, park or dead letter. franz-go fails a record after 4.
		kgo.UnknownTopicRetries(-1),
		kgo.ProducerLinger(Linger),
		kgo.ProduceRequestTimeout(ProduceRequestTimeout),
	)
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cl, nil
}

// ConsumerOpts are the options a consumer-group client needs from cfg:
// seeds, client id, TLS, SASL and the reconnect backoff. The caller adds the
// group, topics and logger (kgo.WithLogger(kafka.Logger(log))). Security
// settings that cannot be loaded make every connection fail with the reason;
// NewClient, which herald calls first, reports them up front.
func ConsumerOpts(cfg config.Kafka) []kgo.Opt {
	return append(connOpts(cfg), SecurityOpts(cfg)...)
}

// SecurityOpts are the TLS and SASL options of cfg, for clients that set
// their own seeds. Like ConsumerOpts, it turns a file that cannot be read or
// an unknown mechanism into an error on every connection attempt.
func SecurityOpts(cfg config.Kafka) []kgo.Opt {
	opts, err := securityOpts(cfg)
	if err != nil {
		return []kgo.Opt{kgo.Dialer(failingDialer(err))}
	}
	return opts
}

// Logger adapts log to franz-go, at warn level and above: franz-go's info
// level narrates every connection and rebalance.
func Logger(log *zap.Logger) kgo.Logger {
	if log == nil {
		log = zap.NewNop()
	}
	return kzap.New(log.Named("kgo"), kzap.Level(kgo.LogLevelWarn))
}

func clientOpts(cfg config.Kafka) ([]kgo.Opt, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers (set kafka.brokers or HERALD_KAFKA_BROKERS)")
	}
	opts := connOpts(cfg)
	sec, err := securityOpts(cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, sec...), nil
}

func connOpts(cfg config.Kafka) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DialTimeout(DialTimeout),
		kgo.RetryBackoffFn(backoff),
	}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	return opts
}

// backoff doubles from 100ms to 5s, with up to 20% jitter so that
// instances restarted together do not reconnect in lockstep.
func backoff(tries int) time.Duration {
	d := maxBackoff
	if tries < 16 {
		d = min(minBackoff<<max(tries-1, 0), maxBackoff)
	}
	return d - time.Duration(rand.Int64N(int64(d/5)+1))
}
