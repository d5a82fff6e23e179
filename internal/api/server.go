// Package api is herald's admin HTTP API: subscription management under
// /v1, liveness and readiness probes, and the Prometheus scrape endpoint.
// Every /v1 route needs a bearer token; every error is JSON.
package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/subscription"
)

// Store is what the API needs from the subscription store
// (*subscription.Store satisfies it).
type Store interface {
	Ready() bool
	Create(ctx context.Context, sub *subscription.Subscription) (*subscription.Subscription, string, error)
	Update(ctx context.Context, id string, ifVersion int64, change func(*subscription.Subscription) error) (*subscription.Subscription, error)
	Delete(ctx context.Context, id string) error
	RotateSecret(ctx context.Context, id string, grace time.Duration) (string, error)
	Get(id string) (*subscription.Subscription, bool)
	List() []*subscription.Subscription
}

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxBodyBytes      = 1 << 20
	DefaultAuthFailureLimit  = 10
	DefaultAuthFailureWindow = time.Minute
	DefaultGracePeriod       = 24 * time.Hour
	MaxGracePeriod           = 30 * 24 * time.Hour
	DefaultPageSize          = 50
	MaxPageSize              = 500
)

// Config holds the API's settings. Zero values take the defaults above.
type Config struct {
	// Tokens are the bearer tokens accepted on /v1. With none, every /v1
	// request is refused with 401 (Validate reports it).
	Tokens []string
	// MaxBodyBytes caps request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// AuthFailureLimit is how many 401s one client IP may collect within
	// AuthFailureWindow before its /v1 requests get 429 until the window
	// ends. Defaults 10 per minute. The client IP is the connection's remote
	// address: forwarding headers are not trusted.
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
}

// Validate reports settings the server cannot work with.
func (c Config) Validate() error {
	n := 0
	for _, t := range c.Tokens {
		if t != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return errors.New("api: no bearer tokens configured")
	case c.MaxBodyBytes < 0:
		return errors.New("api: max body bytes must not be negative")
	case c.AuthFailureLimit < 0 || c.AuthFailureWindow < 0:
		return errors.New("api: auth failure limit and window must not be negative")
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.AuthFailureLimit == 0 {
		c.AuthFailureLimit = DefaultAuthFailureLimit
	}
	if c.AuthFailureWindow == 0 {
		c.AuthFailureWindow = DefaultAuthFailureWindow
	}
}

// Deps are the collaborators the server calls.
type Deps struct {
	// Store holds subscriptions. Required.
	Store Store
	// Ready reports why the process cannot serve yet (nil when it can):
	// subscriptions not caught up, Kafka unreachable. When nil, readiness
	// is Store.Ready().
	Ready func(context.Context) error
	// Metrics serves GET /metrics; when nil the route answers 404.
	Metrics http.Handler
	// Logger receives one debug line per request. Default: no logging.
	Logger *zap.Logger
	// Now is the clock used for auth rate limiting. Default time.Now.
	Now func() time.Time
}

// Server is the admin API as an http.Handler.
type Server struct {
	cfg     Config
	store   Store
	ready   func(context.Context) error
	metrics http.Handler
	log     *zap.Logger
	auth    *authenticator
	mux     *http.ServeMux
}

// route is one registered endpoint. The routes table is the single list
// the server registers and the OpenAPI test checks against the spec.
type route struct {
	method, path string
	auth         bool
	handle       func(*Server, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{"POST", "/v1/subscriptions", true, (*Server).createSubscription},
	{"GET", "/v1/subscriptions", true, (*Server).listSubscriptions},
	{"GET", "/v1/subscriptions/{id}", true, (*Server).getSubscription},
	{"PATCH", "/v1/subscriptions/{id}", true, (*Server).updateSubscription},
	{"DELETE", "/v1/subscriptions/{id}", true, (*Server).deleteSubscription},
	{"POST", "/v1/subscriptions/{id}/rotate-secret", true, (*Server).rotateSecret},
	{"GET", "/healthz", false, (*Server).healthz},
	{"GET", "/readyz", false, (*Server).readyz},
	{"GET", "/metrics", false, (*Server).serveMetrics},
}

// New builds the server. cfg's zero fields take defaults; deps.Store is
// required. Call cfg.Validate first to catch a missing token list.
func New(cfg Config, deps Deps) *Server {
	cfg.applyDefaults()
	s := &Server{
		cfg:     cfg,
		store:   deps.Store,
		ready:   deps.Ready,
		metrics: deps.Metrics,
		log:     deps.Logger,
		mux:     http.NewServeMux(),
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	s.auth = newAuthenticator(cfg.Tokens, cfg.AuthFailureLimit, cfg.AuthFailureWindow, now)
	for _, rt := range routes {
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
		if rt.auth {
			h = s.auth.middleware(h)
		}
		s.mux.Handle(rt.method+" "+rt.path, h)
	}
	return s
}

// ServeHTTP routes the request, answering unknown paths and methods with
// JSON errors, and logs it at debug level.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// The mux's own 404/405 replies are plain text; keep its status
		// and Allow header but answer in JSON.
		s.mux.ServeHTTP(&jsonFallback{statusRecorder: rec}, r)
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	if ce := s.log.Check(zap.DebugLevel, "api request"); ce != nil {
		ce.Write(
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.String("route", r.Pattern),
			zap.Int("status", rec.status()),
			zap.Duration("duration", time.Since(start)),
			zap.String("remote", r.RemoteAddr),
		)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// jsonFallback replaces the body of the mux's 404 and 405 replies; other
// replies (a redirect to a cleaned path) pass through.
type jsonFallback struct {
	*statusRecorder
	replaced, decided bool
}

func (f *jsonFallback) WriteHeader(code int) {
	if f.decided {
		return
	}
	f.decided = true
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		f.statusRecorder.WriteHeader(code)
		return
	}
	f.replaced = true
	h := f.Header()
	h.Del("Content-Type")
	h.Del("X-Content-Type-Options")
	if code == http.StatusMethodNotAllowed {
		writeError(f.statusRecorder, code, codeMethodNotAllowed, "method not allowed", "")
		return
	}
	writeError(f.statusRecorder, code, codeNotFound, "no such route", "")
}

func (f *jsonFallback) Write(b []byte) (int, error) {
	if !f.decided {
		f.WriteHeader(http.StatusOK)
	}
	if f.replaced {
		return len(b), nil
	}
	return f.statusRecorder.Write(b)
}
