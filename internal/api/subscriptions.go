package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/subscription"
)

// created is the create reply: the subscription plus its secret, which is
// never shown again.
type created struct {
	*subscription.Subscription
	Secret string `json:"secret"`
}

func (s *Server) body(w http.ResponseWriter, r *http.Request) io.Reader {
	return http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
}

// createSubscription creates a subscription. Besides the subscription
// fields the body may hold "signing": "ed25519", which gives the
// subscription a key pair for v1a signatures next to its whsec_ secret;
// the reply carries the public key (whpk_), and the private key never
// leaves herald.
func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) {
	body, signing, err := takeSigning(s.body(w, r))
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	sub, err := subscription.Decode(body, s.cfg.MaxBodyBytes)
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	if signing == signingEd25519 {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			s.writeStoreError(w, r, err)
			return
		}
		sub.SigningKey = priv
	}
	sub, secret, err := s.store.Create(r.Context(), sub)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/subscriptions/"+sub.ID)
	setETag(w, sub)
	writeJSON(w, http.StatusCreated, created{sub, secret})
}

// updateSubscription applies a partial change. With If-Match, a stale
// version is refused with 412 before anything is read; a change that
// loses a race inside the store is refused with 409. Either way nothing
// is applied.
func (s *Server) updateSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cur, ok := s.store.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, codeNotFound, "subscription not found", "")
		return
	}
	ifVersion, ok := checkIfMatch(w, r, cur)
	if !ok {
		return
	}
	patch, err := subscription.DecodePatch(s.body(w, r), s.cfg.MaxBodyBytes)
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	sub, err := s.store.Update(r.Context(), id, ifVersion, func(sub *subscription.Subscription) error {
		patch.Apply(sub)
		return nil
	})
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	setETag(w, sub)
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if r.Header.Get("If-Match") != "" {
		cur, ok := s.store.Get(id)
		if !ok {
			writeError(w, http.StatusNotFound, codeNotFound, "subscription not found", "")
			return
		}
		if _, ok := checkIfMatch(w, r, cur); !ok {
			return
		}
	}
	if err := s.store.Delete(r.Context(), id); err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	if s.history != nil {
		if err := s.history.Forget(r.Context(), id); err != nil {
			s.log.Warn("forgetting the history of a deleted subscription failed", zap.String("subscription_id", id), zap.Error(err))
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

type rotateReply struct {
	Secret string `json:"secret"`
}

// rotateSecret makes a new secret. The body is optional:
// {"grace_period": "24h"} says how long the old secret keeps signing.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	grace, err := decodeGrace(s.body(w, r))
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	secret, err := s.store.RotateSecret(r.Context(), id, grace)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rotateReply{Secret: secret})
}

func decodeGrace(body io.Reader) (time.Duration, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return 0, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return DefaultGracePeriod, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return 0, err
	}
	grace := DefaultGracePeriod
	for name, v := range fields {
		if name != "grace_period" {
			return 0, &subscription.FieldError{Field: name, Message: "unknown field " + strconv.Quote(name)}
		}
		var text string
		if err := json.Unmarshal(v, &text); err != nil {
			return 0, &subscription.FieldError{Field: name, Message: `must be a duration string such as "24h"`}
		}
		d, err := time.ParseDuration(text)
		if err != nil || d < 0 || d > MaxGracePeriod {
			return 0, &subscription.FieldError{Field: name, Message: "must be a duration from 0s to " + MaxGracePeriod.String()}
		}
		grace = d
	}
	return grace, nil
}

func setETag(w http.ResponseWriter, sub *subscription.Subscription) {
	w.Header().Set("ETag", etag(sub.Version))
}

func etag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// checkIfMatch evaluates If-Match against cur (RFC 9110 §13.1.1, strong
// comparison) and answers 412 when it fails. It returns the version the
// change must apply to, 0 when the request set no precondition.
func checkIfMatch(w http.ResponseWriter, r *http.Request, cur *subscription.Subscription) (int64, bool) {
	header := r.Header.Get("If-Match")
	if header == "" {
		return 0, true
	}
	want := etag(cur.Version)
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || tag == want {
			return cur.Version, true
		}
	}
	w.Header().Set("ETag", want)
	writeError(w, http.StatusPreconditionFailed, codePreconditionFailed,
		"If-Match "+header+" does not match the current version "+want, "")
	return 0, false
}

// Values of the create body's "signing" member.
const (
	signingHMAC    = "hmac"    // the default: v1 signatures with the whsec_ secret only
	signingEd25519 = "ed25519" // v1a signatures too, verified with the public key
)

// takeSigning removes "signing" from a create body, which the subscription
// decoder does not know, and returns the rest. A body that is not a JSON
// object is passed on untouched for the decoder to reject.
func takeSigning(body io.Reader) (io.Reader, string, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, "", err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields["signing"] == nil {
		return bytes.NewReader(raw), "", nil
	}
	var signing string
	if err := json.Unmarshal(fields["signing"], &signing); err != nil || (signing != signingHMAC && signing != signingEd25519) {
		return nil, "", &subscription.FieldError{Field: "signing", Message: `must be "hmac" or "ed25519"`}
	}
	delete(fields, "signing")
	rest, err := json.Marshal(fields)
	if err != nil {
		return nil, "", err
	}
	return bytes.NewReader(rest), signing, nil
}
