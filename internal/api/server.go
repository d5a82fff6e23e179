// Package api is herald's admin HTTP API: subscription management, test
// sends, attempt history, dead letters and event ingest under /v1, liveness
// and readiness probes, the Prometheus scrape endpoint and the dashboard
// under /ui/. Every /v1 route needs a bearer token; every error is JSON.
package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/history"
	"github.com/herald-dev/herald/internal/ingest"
	"github.com/herald-dev/herald/internal/ratelimit"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/ui"
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

// History is the recent attempts and health of subscriptions:
// *history.Store.
type History interface {
	Recent(ctx context.Context, sub string, n int) ([]history.Attempt, error)
	Health(ctx context.Context, subs ...string) (map[string]history.Health, error)
	Replayed(ctx context.Context, counts map[string]int) error
	Forget(ctx context.Context, sub string) error
}

// Circuits tells a subscription's circuit state on this instance:
// *ratelimit.Breaker.
type Circuits interface {
	State(id string) ratelimit.State
}

// Tester sends one test event to a subscription and reports the attempt:
// *TestSender.
type Tester interface {
	Test(ctx context.Context, sub *subscription.Subscription) (*TestResult, error)
}

// DeadLetters lists and replays herald.dlq: *KafkaDLQ.
type DeadLetters interface {
	List(ctx context.Context, f dlq.Filter) ([]dlq.Entry, error)
	Replay(ctx context.Context, f dlq.Filter) (int, error)
}

// Ingester publishes events sent to POST /v1/events: *ingest.Producer.
type Ingester interface {
	Publish(ctx context.Context, ev *ingest.Event, idempotencyKey string) (ingest.Result, error)
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

	// The optional collaborators below each enable routes; a route whose
	// collaborator is nil answers 503 not_ready saying what is missing.

	// History serves GET …/attempts and the health counters of GET
	// /v1/subscriptions/{id}.
	History History
	// Circuits adds the circuit state to the health counters.
	Circuits Circuits
	// Tester serves POST …/test.
	Tester Tester
	// DeadLetters serves GET /v1/dlq and POST /v1/dlq/replay.
	DeadLetters DeadLetters
	// Ingest serves POST /v1/events.
	Ingest Ingester
	// LogLevel serves GET and PUT /debug/loglevel: the log level, read and
	// changed at run time (zap.AtomicLevel's handler).
	LogLevel http.Handler
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

	history  History
	circuits Circuits
	tester   Tester
	dlq      DeadLetters
	ingest   Ingester
	logLevel http.Handler
	ui       http.Handler
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
	{"POST", "/v1/subscriptions/{id}/test", true, (*Server).testSubscription},
	{"GET", "/v1/subscriptions/{id}/attempts", true, (*Server).listAttempts},
	{"GET", "/v1/dlq", true, (*Server).listDeadLetters},
	{"POST", "/v1/dlq/replay", true, (*Server).replayDeadLetters},
	{"POST", "/v1/events", true, (*Server).ingestEvent},
	{"GET", "/healthz", false, (*Server).healthz},
	{"GET", "/readyz", false, (*Server).readyz},
	{"GET", "/metrics", false, (*Server).serveMetrics},
	{"GET", "/debug/loglevel", true, (*Server).serveLogLevel},
	{"PUT", "/debug/loglevel", true, (*Server).serveLogLevel},
	// The dashboard authenticates with its own cookie; its pages and forms
	// (POST /ui/…) are HTML, not part of the JSON API.
	{"GET", "/ui/", false, (*Server).serveUI},
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

		history:  deps.History,
		circuits: deps.Circuits,
		tester:   deps.Tester,
		dlq:      deps.DeadLetters,
		ingest:   deps.Ingest,
		logLevel: deps.LogLevel,
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
	s.ui = ui.New(s, ui.WithLogger(s.log.Named("ui")))
	s.mux.HandleFunc("POST /ui/", s.serveUI)
	return s
}

func (s *Server) serveLogLevel(w http.ResponseWriter, r *http.Request) {
	if s.logLevel == nil {
		unavailable(w, "the run-time log level")
		return
	}
	s.logLevel.ServeHTTP(w, r)
}

func (s *Server) serveUI(w http.ResponseWriter, r *http.Request) { s.ui.ServeHTTP(w, r) }

// unavailable answers a route whose collaborator is not configured.
func unavailable(w http.ResponseWriter, what string) {
	writeError(w, http.StatusServiceUnavailable, codeNotReady, what+" is not configured on this server", "")
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
