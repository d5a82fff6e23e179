package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/herald-dev/herald/internal/apiclient"
)

// cookieName holds the API token of a signed-in operator.
const cookieName = "herald_session"

// sessionTTL is how long a browser keeps the cookie.
const sessionTTL = 12 * 60 * 60

// session is the signed-in request: its API client and CSRF token.
type session struct {
	api   *apiclient.Client
	csrf  string
	token string
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// session wraps a page that needs a signed-in operator: without the
// cookie it redirects to the login page; a POST without the session's
// CSRF token is refused.
func (h *Handler) session(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil || c.Value == "" {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		s := &session{api: h.client(r, c.Value), csrf: csrfToken(c.Value), token: c.Value}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				h.fail(w, r, s, http.StatusBadRequest, "the form could not be read")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				h.fail(w, r, s, http.StatusForbidden, "the form's CSRF token is missing or stale; reload the page and try again")
				return
			}
		}
		next(w, r, s)
	}
}

// maxForm bounds a form body.
const maxForm = 64 << 10

// csrfToken is derived from the session's token: stable for the session,
// the same on every instance, and unknowable without the token.
func csrfToken(token string) string {
	key := sha256.Sum256([]byte("herald ui csrf\x00" + token))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func setSession(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: token, Path: "/ui/", MaxAge: sessionTTL,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/ui/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login", nil, map[string]any{"Title": "Sign in"})
}

// login checks the token against the API (which throttles a client that
// keeps guessing) and keeps it in the session cookie.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	token := ""
	if r.ParseForm() == nil {
		token = r.PostForm.Get("token")
	}
	fail := func(status int, msg string) {
		h.render(w, r, status, "login", nil, map[string]any{"Title": "Sign in", "Error": msg})
	}
	if token == "" || len(token) > 4096 {
		fail(http.StatusBadRequest, "Enter an API token.")
		return
	}
	_, err := h.client(r, token).ListSubscriptions(r.Context(), apiclient.ListOptions{Limit: 1})
	var apiErr *apiclient.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized:
		fail(http.StatusUnauthorized, "That token is not valid.")
		return
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
		fail(http.StatusTooManyRequests, "Too many failed sign-ins from this address; wait a minute.")
		return
	case err != nil:
		fail(http.StatusBadGateway, "herald could not check the token: "+err.Error())
		return
	}
	setSession(w, r, token)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	clearSession(w, r)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
