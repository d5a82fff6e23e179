// Package ui is herald's dashboard: server-rendered pages (html/template,
// assets embedded, no JavaScript build) for the operations the admin API
// offers: subscriptions with their health, recent attempts, secret
// rotation, test sends, pause and resume, dead letters and replay.
//
// The dashboard holds no state and no privileges of its own. Signing in
// takes an API token, which is checked by the API and kept in an HttpOnly,
// SameSite=Strict cookie; every page calls the admin API in process with
// that token, so the API's authentication (constant-time compare,
// brute-force throttling per client address) and validation apply
// unchanged. Forms carry a CSRF token derived from the session, and
// cross-origin form posts are refused (http.CrossOriginProtection).
package ui

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"

	"go.uber.org/zap"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Handler serves the dashboard under /ui/.
type Handler struct {
	api   http.Handler
	log   *zap.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger for failures the pages cannot show. Default: none.
func WithLogger(l *zap.Logger) Option { return func(h *Handler) { h.log = l } }

// New returns the dashboard, which calls api (the admin API's handler) in
// process for everything it shows and does.
func New(api http.Handler, opts ...Option) *Handler {
	h := &Handler{api: api, log: zap.NewNop(), mux: http.NewServeMux()}
	for _, o := range opts {
		o(h)
	}
	h.pages = parsePages()
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /ui/login", h.loginPage)
	h.mux.HandleFunc("POST /ui/login", h.login)
	h.mux.HandleFunc("POST /ui/logout", h.session(h.logout))
	h.mux.HandleFunc("GET /ui/{$}", h.session(h.subscriptions))
	h.mux.HandleFunc("GET /ui/subscriptions/new", h.session(h.newSubscription))
	h.mux.HandleFunc("POST /ui/subscriptions", h.session(h.createSubscription))
	h.mux.HandleFunc("GET /ui/subscriptions/{id}", h.session(h.subscription))
	h.mux.HandleFunc("POST /ui/subscriptions/{id}/rotate", h.session(h.rotate))
	h.mux.HandleFunc("POST /ui/subscriptions/{id}/test", h.session(h.sendTest))
	h.mux.HandleFunc("POST /ui/subscriptions/{id}/status", h.session(h.setStatus))
	h.mux.HandleFunc("GET /ui/dlq", h.session(h.deadLetters))
	h.mux.HandleFunc("POST /ui/dlq/replay", h.session(h.replay))
	return h
}

// ServeHTTP serves a dashboard page. Every response forbids framing and
// sniffing, and keeps scripts out altogether: the pages have none.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	crossOrigin.Handler(h.mux).ServeHTTP(w, r)
}

// crossOrigin refuses state-changing requests that browsers mark as
// coming from another origin.
var crossOrigin = http.NewCrossOriginProtection()

func parsePages() map[string]*template.Template {
	names := []string{"login", "subscriptions", "subscription", "new", "secret", "dlq", "error"}
	out := make(map[string]*template.Template, len(names))
	for _, n := range names {
		out[n] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return out
}
