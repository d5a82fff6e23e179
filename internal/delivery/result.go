package delivery

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Class is what an attempt's outcome means for the delivery.
type Class uint8

const (
	_ Class = iota // the zero Result is not mistaken for a delivery
	// Delivered: the endpoint answered 2xx.
	Delivered
	// Retryable: a 3xx, a 4xx other than 410, a 5xx, a timeout, a DNS,
	// connection or TLS error. Try again later.
	Retryable
	// Gone: the endpoint answered 410; disable the subscription.
	Gone
	// Refused: herald would not send the request (a blocked destination, an
	// unusable URL or a request that could not be built). Retrying cannot
	// help.
	Refused
)

func (c Class) String() string {
	switch c {
	case Delivered:
		return "delivered"
	case Retryable:
		return "retryable"
	case Gone:
		return "gone"
	case Refused:
		return "refused"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Result is the outcome of one attempt.
type Result struct {
	// Status is the HTTP status code, 0 when no response arrived.
	Status int
	// Latency runs from sending the request to reading the (capped) body.
	Latency time.Duration
	// Body is the start of the response body, at most the client's
	// MaxResponseBytes.
	Body []byte
	// RetryAfter is the endpoint's Retry-After on a 429 or 503, capped at
	// 24 hours; 0 when absent or already past.
	RetryAfter time.Duration
	// Aborted is set when the response carries "webhook-delivery: abort":
	// the endpoint asks that this delivery not be retried. It does not
	// change Class; a 2xx with it is still delivered.
	Aborted bool
	// Err says why the attempt did not deliver: a *StatusError,
	// *NetworkError or *DestinationError (test with errors.As). Nil when
	// Class is Delivered.
	Err   error
	Class Class
}

// Excerpt returns at most the first n bytes of the body as valid UTF-8: a
// rune cut at the end is dropped and invalid bytes become U+FFFD, without
// the result growing past n bytes.
func (r Result) Excerpt(n int) string {
	return excerpt(r.Body, n)
}

func excerpt(body []byte, n int) string {
	if n <= 0 || len(body) == 0 {
		return ""
	}
	if len(body) > n {
		body = body[:n]
	}
	if utf8.Valid(body) {
		return string(body)
	}
	var b strings.Builder
	b.Grow(len(body))
	for len(body) > 0 {
		r, size := utf8.DecodeRune(body)
		if r == utf8.RuneError && size == 1 && !utf8.FullRune(body) {
			break // a rune cut by the limit
		}
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
		body = body[size:]
	}
	return b.String()
}

// maxRetryAfter bounds how long an endpoint can ask herald to wait.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date,
// relative to now. Dates in the past and values that do not parse give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return maxRetryAfter
			}
			return 0
		}
		if secs >= uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		return 0
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}
