package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// authenticator checks bearer tokens on /v1 and throttles clients that keep
// presenting bad ones.
//
// Every request is authenticated with the same token set: a valid token
// grants everything, so 403 (valid token, missing right) is not answered
// yet; it is reserved for when tokens carry roles.
type authenticator struct {
	hashes [][sha256.Size]byte
	fails  *failureLimiter
}

func newAuthenticator(tokens []string, limit int, window time.Duration, now func() time.Time) *authenticator {
	a := &authenticator{fails: newFailureLimiter(limit, window, now)}
	for _, t := range tokens {
		if t != "" {
			a.hashes = append(a.hashes, sha256.Sum256([]byte(t)))
		}
	}
	return a
}

// valid compares the presented token with every configured one in constant
// time. Hashing first gives equal lengths, so neither a token's length nor
// which token matched shows in the timing.
func (a *authenticator) valid(token string) bool {
	h := sha256.Sum256([]byte(token))
	ok := 0
	for i := range a.hashes {
		ok |= subtle.ConstantTimeCompare(h[:], a.hashes[i][:])
	}
	return ok == 1
}

func (a *authenticator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r)
		// A throttled client is refused before its token is looked at, so
		// guessing stays blocked even when a guess would be right.
		if wait := a.fails.blocked(ip); wait > 0 {
			tooManyFailures(w, wait)
			return
		}
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok || !a.valid(token) {
			// Guesses sent at once all pass the check above; counting
			// this one decides whether it may still be answered 401.
			if wait := a.fails.record(ip); wait > 0 {
				tooManyFailures(w, wait)
				return
			}
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
				writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing or malformed bearer token", "")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "invalid bearer token", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	writeError(w, http.StatusTooManyRequests, codeRateLimited, "too many failed authentications; retry later", "")
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header (scheme case-insensitive, RFC 6750).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// failureLimiter counts authentication failures per client IP in fixed
// windows. It holds no goroutine: stale entries are swept when the table
// grows.
type failureLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*failures
}

type failures struct {
	count int
	start time.Time
}

// maxTrackedClients bounds the table against a spray of source addresses;
// past it, expired entries are dropped, then the oldest entry.
const maxTrackedClients = 10000

func newFailureLimiter(limit int, window time.Duration, now func() time.Time) *failureLimiter {
	return &failureLimiter{limit: limit, window: window, now: now, clients: make(map[string]*failures)}
}

// blocked returns how long ip must still wait, or 0.
func (l *failureLimiter) blocked(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.clients[ip]
	if !ok {
		return 0
	}
	left := f.start.Add(l.window).Sub(l.now())
	if left <= 0 {
		delete(l.clients, ip)
		return 0
	}
	if f.count < l.limit {
		return 0
	}
	return left
}

// record counts a failure of ip. It returns 0 while the failures stay
// within the limit, else how long ip must wait: the failure is then
// answered as throttled, not as checked.
func (l *failureLimiter) record(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f, ok := l.clients[ip]
	if !ok || !now.Before(f.start.Add(l.window)) {
		if !ok && len(l.clients) >= maxTrackedClients {
			l.sweep(now)
		}
		f = &failures{start: now}
		l.clients[ip] = f
	}
	f.count++
	if f.count <= l.limit {
		return 0
	}
	return f.start.Add(l.window).Sub(now)
}

func (l *failureLimiter) sweep(now time.Time) {
	var oldestIP string
	var oldest time.Time
	for ip, f := range l.clients {
		if !now.Before(f.start.Add(l.window)) {
			delete(l.clients, ip)
			continue
		}
		if oldestIP == "" || f.start.Before(oldest) {
			oldestIP, oldest = ip, f.start
		}
	}
	if len(l.clients) >= maxTrackedClients {
		delete(l.clients, oldestIP)
	}
}
