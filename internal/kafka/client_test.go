package kafka

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/herald-dev/herald/internal/config"
)

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestNewClientProducesAndConsumerOptsConsume(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "orders"))
	cfg := config.Default().Kafka
	cfg.Brokers = c.ListenAddrs()

	cl, err := NewClient(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testContext(t, 10*time.Second)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("o-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consumer, err := kgo.NewClient(append(ConsumerOpts(cfg),
		kgo.ConsumerGroup("g"), kgo.ConsumeTopics("orders"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	fetches := consumer.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Value) != "o-1" {
		t.Fatalf("consumed %v", recs)
	}
}

func TestNewClientSettings(t *testing.T) {
	cfg := config.Kafka{Brokers: []string{"127.0.0.1:1"}, ClientID: "herald-test"}
	cl, err := NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	checks := []struct {
		opt  any
		want any
	}{
		{kgo.ClientID, "herald-test"},
		{kgo.ProducerLinger, 5 * time.Millisecond},
		{kgo.RequiredAcks, kgo.AllISRAcks()},
		{kgo.DisableIdempotentWrite, false},
		{kgo.ProduceRequestTimeout, 10 * time.Second},
		{kgo.DialTimeout, 5 * time.Second},
	}
	for _, tc := range checks {
		if got := cl.OptValue(tc.opt); got != tc.want {
			t.Errorf("%T option = %v, want %v", tc.opt, got, tc.want)
		}
	}

	// Options passed by the caller win over the defaults.
	cl2, err := NewClient(cfg, nil, kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if got := cl2.OptValue(kgo.ProducerLinger); got != time.Duration(0) {
		t.Errorf("linger after override = %v", got)
	}
}

func TestNewClientErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config.Kafka
		want string
	}{
		{"no brokers", config.Kafka{}, "kafka.brokers"},
		{"missing CA", config.Kafka{Brokers: []string{"k:9092"}, TLS: config.TLS{CAFile: filepath.Join(dir, "nope.pem")}}, "kafka.tls.ca_file"},
		{"CA not PEM", config.Kafka{Brokers: []string{"k:9092"}, TLS: config.TLS{CAFile: notPEM}}, "kafka.tls.ca_file: no PEM certificate"},
		{"bad key pair", config.Kafka{Brokers: []string{"k:9092"}, TLS: config.TLS{CertFile: notPEM, KeyFile: notPEM}}, "kafka.tls.cert_file and key_file"},
		{"mechanism", config.Kafka{Brokers: []string{"k:9092"}, SASL: config.SASL{Mechanism: "GSSAPI"}}, "kafka.sasl.mechanism"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := NewClient(tc.cfg, nil)
			if err == nil {
				cl.Close()
				t.Fatal("NewClient succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to name %s", err, tc.want)
			}
		})
	}
}

// A client built from SecurityOpts with an unreadable CA must fail with that
// reason rather than connect in plaintext.
func TestSecurityOptsErrorFailsConnections(t *testing.T) {
	c := newCluster(t)
	cfg := config.Kafka{Brokers: c.ListenAddrs(), TLS: config.TLS{CAFile: "/nonexistent/ca.pem"}}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, SecurityOpts(cfg)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = cl.Ping(testContext(t, 5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "kafka.tls.ca_file") {
		t.Errorf("Ping() = %v, want the CA file error", err)
	}
}

func TestSASL(t *testing.T) {
	c := newCluster(t,
		kfake.EnableSASL(),
		kfake.Superuser(config.SASLPlain, "plain-user", "plain-pw"),
		kfake.Superuser(config.SASLScramSHA256, "scram256-user", "scram256-pw"),
		kfake.Superuser(config.SASLScramSHA512, "scram512-user", "scram512-pw"),
	)
	users := map[string]string{
		config.SASLPlain:       "plain",
		config.SASLScramSHA256: "scram256",
		config.SASLScramSHA512: "scram512",
	}
	for mech, user := range users {
		t.Run(mech, func(t *testing.T) {
			cfg := config.Kafka{Brokers: c.ListenAddrs(), SASL: config.SASL{Mechanism: mech, Username: user + "-user", Password: user + "-pw"}}
			cl, err := NewClient(cfg, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := cl.Ping(testContext(t, 5*time.Second)); err != nil {
				t.Errorf("Ping with %s: %v", mech, err)
			}

			cfg.SASL.Password = "wrong"
			bad, err := NewClient(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			if err := bad.Ping(testContext(t, 2*time.Second)); err == nil {
				t.Errorf("Ping with a wrong %s password succeeded", mech)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	c := newCluster(t, kfake.TLS(pki.server))
	brokers := c.ListenAddrs()

	t.Run("CA file", func(t *testing.T) {
		cl, err := NewClient(config.Kafka{Brokers: brokers, TLS: config.TLS{CAFile: pki.caFile}}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Ping(testContext(t, 5*time.Second)); err != nil {
			t.Error(err)
		}
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		cl, err := NewClient(config.Kafka{Brokers: brokers, TLS: config.TLS{Enabled: true, InsecureSkipVerify: true}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Ping(testContext(t, 5*time.Second)); err != nil {
			t.Error(err)
		}
	})
	t.Run("untrusted CA stops WaitForBroker at once", func(t *testing.T) {
		cl, err := NewClient(config.Kafka{Brokers: brokers, TLS: config.TLS{Enabled: true}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		start := time.Now()
		err = WaitForBroker(testContext(t, 10*time.Second), cl, zaptest.NewLogger(t))
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("WaitForBroker() = %v, want a certificate error", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("WaitForBroker kept retrying an untrusted certificate for %v", time.Since(start))
		}
	})
}

func TestBackoff(t *testing.T) {
	for tries := range 40 {
		d := backoff(tries)
		want := min(100*time.Millisecond<<max(tries-1, 0), 5*time.Second)
		if tries >= 16 {
			want = 5 * time.Second
		}
		if d > want || d < want-want/5 {
			t.Errorf("backoff(%d) = %v, want within 20%% below %v", tries, d, want)
		}
	}
}
