package delivery

import (
	"crypto/tls"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a Client.
type Option func(*config)

type config struct {
	policy           policy
	resolve          Resolver
	maxResponseBytes int64
	userAgent        string
	maxIdlePerHost   int
	maxDialsPerHost  int
	dialTimeout      time.Duration
	tlsTimeout       time.Duration
	tls              *tls.Config
	tracerProvider   trace.TracerProvider
	propagators      propagation.TextMapPropagator
	meterProvider    metric.MeterProvider
}

func defaultConfig() config {
	return config{
		resolve:          defaultResolver,
		maxResponseBytes: 64 << 10,
		maxIdlePerHost:   1024,
		maxDialsPerHost:  64,
		dialTimeout:      5 * time.Second,
		tlsTimeout:       5 * time.Second,
	}
}

// AllowPrivateNetworks lets deliveries reach loopback, private (RFC 1918,
// fc00::/7), link-local and CGNAT addresses, for local tests and dev mode.
// Cloud metadata, multicast, broadcast, unspecified and other reserved
// addresses stay refused; only AllowCIDRs opens them. Default false.
func AllowPrivateNetworks(allow bool) Option {
	return func(c *config) { c.policy.allowPrivate = allow }
}

// AllowCIDRs lets deliveries reach these ranges whatever kind of address
// they hold, e.g. one internal network a subscriber lives on. Default none.
func AllowCIDRs(prefixes ...netip.Prefix) Option {
	return func(c *config) {
		for _, p := range prefixes {
			if !p.IsValid() {
				continue
			}
			// Addresses are unmapped before they are checked, so the
			// prefixes are too.
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			c.policy.allow = append(c.policy.allow, p.Masked())
		}
	}
}

// WithResolver sets how host names are resolved before their addresses are
// checked and dialled. Default net.DefaultResolver.LookupNetIP.
func WithResolver(r Resolver) Option {
	return func(c *config) {
		if r != nil {
			c.resolve = r
		}
	}
}

// MaxResponseBytes bounds how much of a response body is read and kept; the
// rest is never read. Default 64 KiB.
func MaxResponseBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxResponseBytes = n
		}
	}
}

// WithUserAgent replaces the user-agent Build sets. Default: keep Build's,
// "herald/<Version>".
func WithUserAgent(ua string) Option {
	return func(c *config) { c.userAgent = ua }
}

// MaxIdleConnsPerHost is how many idle keep-alive connections are kept per
// endpoint (scheme and host). Default 1024: many subscriptions may share a
// host, each with its own max_in_flight, and a connection closed because
// too many went idle at once is dialled again a moment later. An idle
// connection holds no buffer, and goes after 90 s unused.
func MaxIdleConnsPerHost(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxIdlePerHost = n
		}
	}
}

// MaxDialsPerHost is how many connections to one endpoint (scheme and
// host) are dialled at once. A request that finds no idle connection and
// every dial under way waits for a connection put back or a dial to end,
// within its own timeout. Default 64: a burst of thousands of requests to
// one host, as a fan-out to its many subscriptions sends, reuses the
// connections its first answers free rather than opening thousands at
// once, which overflows the host's accept queue.
func MaxDialsPerHost(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxDialsPerHost = n
		}
	}
}

// DialTimeout bounds one TCP connect. Default 5s; the request's timeout
// bounds the whole attempt in any case.
func DialTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.dialTimeout = d
		}
	}
}

// TLSHandshakeTimeout bounds the TLS handshake. Default 5s.
func TLSHandshakeTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.tlsTimeout = d
		}
	}
}

// WithTLSConfig sets the TLS configuration, e.g. extra root CAs. Default:
// the system roots, TLS 1.2 or later.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithTracerProvider sets where the HTTP client spans go. Default: the
// provider of the span in the request's context, else the global one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracerProvider = tp }
}

// WithPropagators sets how the trace context is written into the request
// (traceparent). Default: the global propagator.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagators = p }
}

// WithMeterProvider sets where the HTTP client metrics go
// (http.client.request.duration, http.client.request.body.size). Default:
// the global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meterProvider = mp }
}
