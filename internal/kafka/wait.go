package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// pingTimeout bounds one attempt, in case a broker accepts the connection
// and never answers.
const pingTimeout = 10 * time.Second

// WaitForBroker returns once a broker answers a metadata request, retrying
// with a backoff from 100ms to 5s and logging each failure as
// "kafka not reachable at <brokers>: <err>; retrying in <d>". It gives up
// when ctx ends, or at once on errors that waiting cannot fix: rejected
// credentials and untrusted certificates.
func WaitForBroker(ctx context.Context, cl *kgo.Client, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	brokers := seeds(cl)
	wait := minBackoff
	for failures := 0; ; failures++ {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := cl.Ping(pctx)
		cancel()
		if err == nil {
			if failures > 0 {
				log.Info("kafka reachable at "+brokers, zap.Int("failed_attempts", failures))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kafka not reachable at %s: %w (last error: %v)", brokers, ctx.Err(), err)
		}
		if permanent(err) {
			return fmt.Errorf("kafka at %s: %w", brokers, err)
		}
		log.Warn(fmt.Sprintf("kafka not reachable at %s: %v; retrying in %s", brokers, err, wait),
			zap.String("brokers", brokers), zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka not reachable at %s: %w (last error: %v)", brokers, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

func seeds(cl *kgo.Client) string {
	if s, ok := cl.OptValue(kgo.SeedBrokers).([]string); ok && len(s) > 0 {
		return strings.Join(s, ",")
	}
	return "(no seed brokers)"
}

func permanent(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	return errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}
