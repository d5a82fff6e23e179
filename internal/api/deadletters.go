package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/retry"
	"github.com/herald-dev/herald/internal/subscription"
)

// KafkaDLQ is DeadLetters on herald.dlq: Client reads it (a plain,
// non-group client), Producer writes replays into the first retry tier.
type KafkaDLQ struct {
	Client   *kgo.Client
	Producer *retry.Producer
}

// List returns the dead letters matching f, oldest first.
func (k *KafkaDLQ) List(ctx context.Context, f dlq.Filter) ([]dlq.Entry, error) {
	return dlq.List(ctx, k.Client, k.Producer.DLQTopic(), f)
}

// Replay re-injects the dead letters matching f and returns how many.
func (k *KafkaDLQ) Replay(ctx context.Context, f dlq.Filter) (int, error) {
	return dlq.Replay(ctx, k.Client, f, k.Producer)
}

// Sizes of a dead-letter page.
const (
	DefaultDeadLetters = 100
	MaxDeadLetters     = 1000
)

// deadLetter is a dlq.Entry as the API shows it: the event as JSON when it
// is JSON, else base64.
type deadLetter struct {
	dlq.Entry
	Value         json.RawMessage `json:"value"`
	ValueEncoding string          `json:"value_encoding"`
}

func viewDeadLetter(e dlq.Entry) deadLetter {
	d := deadLetter{Entry: e, ValueEncoding: "json"}
	if len(e.Value) > 0 && json.Valid(e.Value) {
		var c bytes.Buffer
		if json.Compact(&c, e.Value) == nil {
			d.Value = c.Bytes()
			return d
		}
	}
	b, _ := json.Marshal(e.Value) // []byte marshals as base64
	d.Value, d.ValueEncoding = b, "base64"
	return d
}

type deadLetterPage struct {
	Data []deadLetter `json:"data"`
}

// listDeadLetters answers the dead letters that match the query, oldest
// first: subscription (an id), since and until (RFC 3339, [since, until)
// of the time they were dead-lettered), ids (comma-separated delivery
// ids), limit (default 100, at most 1000; the oldest are kept, so the next
// page starts at since = the last dead_lettered_at).
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.dlq == nil {
		unavailable(w, "the dead-letter queue")
		return
	}
	q := r.URL.Query()
	f := dlq.Filter{SubscriptionID: q.Get("subscription"), Limit: DefaultDeadLetters}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxDeadLetters {
			writeError(w, http.StatusBadRequest, codeValidation,
				"limit must be an integer from 1 to "+strconv.Itoa(MaxDeadLetters), "limit")
			return
		}
		f.Limit = n
	}
	var ok bool
	if f.Since, ok = queryTime(w, q.Get("since"), "since"); !ok {
		return
	}
	if f.Until, ok = queryTime(w, q.Get("until"), "until"); !ok {
		return
	}
	if v := q.Get("ids"); v != "" {
		f.IDs = strings.Split(v, ",")
	}
	es, err := s.dlq.List(r.Context(), f)
	if err != nil {
		s.log.Error("listing dead letters failed", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, codeNotReady, "the dead-letter queue cannot be read: "+err.Error(), "")
		return
	}
	out := deadLetterPage{Data: make([]deadLetter, len(es))}
	for i, e := range es {
		out.Data[i] = viewDeadLetter(e)
	}
	writeJSON(w, http.StatusOK, out)
}

func queryTime(w http.ResponseWriter, v, field string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeValidation, field+" must be an RFC 3339 time such as 2024-05-01T12:00:00Z", field)
		return time.Time{}, false
	}
	return t, true
}

// replayRequest selects the dead letters to replay; at least one field is
// needed, so that an empty body cannot replay the whole queue by accident.
type replayRequest struct {
	SubscriptionID string   `json:"subscription_id"`
	Since          string   `json:"since"` // RFC 3339
	Until          string   `json:"until"`
	IDs            []string `json:"ids"`
}

type replayReply struct {
	Replayed int `json:"replayed"`
}

// replayDeadLetters re-injects the selected dead letters into the first
// retry tier, attempts reset, and answers 202 with how many: they are
// delivered from there like any retry.
func (s *Server) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.dlq == nil {
		unavailable(w, "the dead-letter queue")
		return
	}
	var req replayRequest
	if err := decodeStrictJSON(s.body(w, r), &req); err != nil {
		writeDecodeError(w, err)
		return
	}
	f := dlq.Filter{SubscriptionID: req.SubscriptionID, IDs: req.IDs}
	var ok bool
	if f.Since, ok = queryTime(w, req.Since, "since"); !ok {
		return
	}
	if f.Until, ok = queryTime(w, req.Until, "until"); !ok {
		return
	}
	if f.SubscriptionID == "" && f.Since.IsZero() && f.Until.IsZero() && len(f.IDs) == 0 {
		writeError(w, http.StatusBadRequest, codeValidation, "select what to replay: subscription_id, since, until or ids", "")
		return
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		writeError(w, http.StatusBadRequest, codeValidation, "until must be after since", "until")
		return
	}
	// What is about to be replayed, per subscription, for the health
	// counters; entries dead-lettered meanwhile may make it inexact.
	var counts map[string]int
	if s.history != nil {
		if es, err := s.dlq.List(r.Context(), f); err == nil {
			counts = make(map[string]int)
			for _, e := range es {
				if e.Corrupt == "" {
					counts[e.SubscriptionID]++
				}
			}
		}
	}
	n, err := s.dlq.Replay(r.Context(), f)
	if err != nil {
		s.log.Error("replaying dead letters failed", zap.Int("replayed", n), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, codeNotReady,
			"replay stopped after "+strconv.Itoa(n)+" dead letters: "+err.Error(), "")
		return
	}
	if s.history != nil && counts != nil {
		if err := s.history.Replayed(r.Context(), counts); err != nil {
			s.log.Warn("lowering dead-letter counts failed", zap.Error(err))
		}
	}
	writeJSON(w, http.StatusAccepted, replayReply{Replayed: n})
}

// decodeStrictJSON decodes one JSON object into v, refusing unknown fields
// (as a *subscription.FieldError naming the field) and trailing data.
func decodeStrictJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &subscription.FieldError{Field: te.Field, Message: "has the wrong type"}
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			return &subscription.FieldError{Field: name, Message: "unknown field " + strconv.Quote(name)}
		}
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}
