package ui

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/subscription"
)

// page is what every template gets: the session's CSRF token for its
// forms and the page's own data.
type page struct {
	Title    string
	CSRF     string
	SignedIn bool
	Nav      string
	Data     any
}

// render executes a page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, data map[string]any) {
	p := page{Data: data}
	if t, ok := data["Title"].(string); ok {
		p.Title = t
	}
	if n, ok := data["Nav"].(string); ok {
		p.Nav = n
	}
	if s != nil {
		p.CSRF, p.SignedIn = s.csrf, true
	}
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.log.Error("ui: rendering page", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	h.render(w, r, status, "error", s, map[string]any{"Title": http.StatusText(status), "Message": msg})
}

// apiFailed shows an API error: a token that stopped working (rotated out
// of the configuration) ends the session.
func (h *Handler) apiFailed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) {
		if apiErr.Status == http.StatusUnauthorized {
			clearSession(w, r)
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		h.fail(w, r, s, apiErr.Status, describe(apiErr))
		return
	}
	h.log.Warn("ui: API call failed", zap.Error(err))
	h.fail(w, r, s, http.StatusBadGateway, err.Error())
}

func describe(e *apiclient.Error) string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

func (h *Handler) subscriptions(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	opts := apiclient.ListOptions{Status: q.Get("status"), Cursor: q.Get("cursor"), Limit: 50}
	p, err := s.api.ListDetails(r.Context(), opts)
	if err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	h.render(w, r, http.StatusOK, "subscriptions", s, map[string]any{
		"Title": "Subscriptions", "Nav": "subs", "Page": p, "Status": opts.Status,
	})
}

func (h *Handler) subscription(w http.ResponseWriter, r *http.Request, s *session) {
	h.showSubscription(w, r, s, r.PathValue("id"), nil)
}

// showSubscription renders a subscription with its health and recent
// attempts; extra adds a result to show once (a test send, a status change).
func (h *Handler) showSubscription(w http.ResponseWriter, r *http.Request, s *session, id string, extra map[string]any) {
	d, err := s.api.GetDetail(r.Context(), id)
	if err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	attempts, err := s.api.Attempts(r.Context(), id, 20)
	var apiErr *apiclient.Error
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable) {
		h.apiFailed(w, r, s, err)
		return
	}
	data := map[string]any{"Title": d.ID, "Nav": "subs", "Sub": d, "Attempts": attempts, "History": err == nil}
	for k, v := range extra {
		data[k] = v
	}
	h.render(w, r, http.StatusOK, "subscription", s, data)
}

func (h *Handler) newSubscription(w http.ResponseWriter, r *http.Request, s *session) {
	h.render(w, r, http.StatusOK, "new", s, map[string]any{
		"Title": "New subscription", "Nav": "new", "Form": url.Values{"payload": {"envelope"}, "signing": {"hmac"}},
	})
}

// createSubscription creates from the form and shows the secret, once.
func (h *Handler) createSubscription(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	body := map[string]any{"url": strings.TrimSpace(f.Get("url"))}
	if v := strings.TrimSpace(f.Get("description")); v != "" {
		body["description"] = v
	}
	if v := list(f.Get("topics")); v != nil {
		body["topics"] = v
	}
	if v := list(f.Get("event_types")); v != nil {
		body["event_types"] = v
	}
	if v := f.Get("payload"); v != "" {
		body["payload"] = v
	}
	if v := strings.TrimSpace(f.Get("thin_url_template")); v != "" {
		body["thin_url_template"] = v
	}
	if v := f.Get("signing"); v != "" {
		body["signing"] = v
	}
	created, err := s.api.CreateSubscription(r.Context(), body)
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest {
		h.render(w, r, http.StatusBadRequest, "new", s, map[string]any{
			"Title": "New subscription", "Nav": "new", "Form": f, "Error": describe(apiErr), "Field": apiErr.Field,
		})
		return
	}
	if err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	h.render(w, r, http.StatusCreated, "secret", s, map[string]any{
		"Title": "Subscription created", "Nav": "subs", "ID": created.ID, "Secret": created.Secret,
		"PublicKey": created.PublicKey, "Created": true,
	})
}

// list splits a comma- or space-separated form field.
func list(v string) []string {
	fields := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if len(fields) == 0 {
		return nil
	}
	return fields
}

// rotate makes a new secret and shows it, once.
func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	grace, err := time.ParseDuration(r.PostForm.Get("grace"))
	if err != nil {
		h.fail(w, r, s, http.StatusBadRequest, "grace must be a duration such as 24h")
		return
	}
	secret, err := s.api.RotateSecret(r.Context(), id, grace)
	if err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	h.render(w, r, http.StatusOK, "secret", s, map[string]any{
		"Title": "New secret", "Nav": "subs", "ID": id, "Secret": secret, "Grace": grace,
	})
}

func (h *Handler) sendTest(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	res, err := s.api.SendTest(r.Context(), id)
	if err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	h.showSubscription(w, r, s, id, map[string]any{"Test": res})
}

// setStatus pauses or resumes.
func (h *Handler) setStatus(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	status := r.PostForm.Get("status")
	if status != string(subscription.StatusActive) && status != string(subscription.StatusPaused) {
		h.fail(w, r, s, http.StatusBadRequest, "status must be active or paused")
		return
	}
	if _, err := s.api.SetStatus(r.Context(), id, status); err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/ui/subscriptions/"+url.PathEscape(id), http.StatusSeeOther)
}

func (h *Handler) deadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	sub := strings.TrimSpace(q.Get("subscription"))
	entries, err := h.listDeadLetters(r.Context(), r, s.token, sub, 200)
	if err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	data := map[string]any{"Title": "Dead letters", "Nav": "dlq", "Entries": entries, "Subscription": sub}
	if n, err := strconv.Atoi(q.Get("replayed")); err == nil {
		data["Replayed"] = n
	}
	h.render(w, r, http.StatusOK, "dlq", s, data)
}

// replay re-injects one dead letter (ids) or every dead letter of a
// subscription, then shows the list again with how many went.
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ids := strings.TrimSpace(r.PostForm.Get("subscription")), r.PostForm["id"]
	if sub == "" && len(ids) == 0 {
		h.fail(w, r, s, http.StatusBadRequest, "choose a dead letter or a subscription to replay")
		return
	}
	n, err := h.replayDeadLetters(r.Context(), r, s.token, sub, ids)
	if err != nil {
		h.apiFailed(w, r, s, err)
		return
	}
	q := url.Values{"replayed": {strconv.Itoa(n)}}
	if back := strings.TrimSpace(r.PostForm.Get("back")); back != "" {
		q.Set("subscription", back)
	}
	http.Redirect(w, r, "/ui/dlq?"+q.Encode(), http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"pct": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatFloat(*v*100, 'f', 0, 64) + "%"
	},
	"ms": func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" },
	"join": func(v []string) string {
		if len(v) == 0 {
			return "(all)"
		}
		return strings.Join(v, ", ")
	},
	"short": func(s string, n int) string {
		if len([]rune(s)) <= n {
			return s
		}
		return string([]rune(s)[:n]) + "…"
	},
	"status": func(code int) string {
		if code == 0 {
			return "–"
		}
		return fmt.Sprint(code)
	},
	"rateClass": func(v *float64) string {
		switch {
		case v == nil:
			return ""
		case *v >= 0.99:
			return "good"
		case *v >= 0.9:
			return "warn"
		}
		return "bad"
	},
	"field": func(f url.Values, k string) string { return f.Get(k) },
	"list":  func(v ...string) []string { return v },
}
