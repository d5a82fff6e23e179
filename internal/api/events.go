package api

import (
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/ingest"
)

type ingested struct {
	ID string `json:"id"`
}

// ingestEvent publishes one event to the ingest topic and answers 202 once
// the broker has it. With an Idempotency-Key, a repeated request answers
// the first one's id with Idempotent-Replayed: true and writes nothing.
func (s *Server) ingestEvent(w http.ResponseWriter, r *http.Request) {
	if s.ingest == nil {
		unavailable(w, "event ingest")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key != "" && !ingest.ValidIdempotencyKey(key) {
		writeError(w, http.StatusBadRequest, codeValidation,
			"Idempotency-Key must be 1 to 255 printable characters", "Idempotency-Key")
		return
	}
	ev, err := ingest.Decode(s.body(w, r))
	var fe *ingest.FieldError
	if errors.As(err, &fe) {
		writeError(w, http.StatusBadRequest, codeValidation, fe.Message, fe.Field)
		return
	}
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	// The caller's traceparent, so the deliveries join its trace.
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	res, err := s.ingest.Publish(ctx, ev, key)
	switch {
	case errors.Is(err, ingest.ErrInProgress):
		writeError(w, http.StatusConflict, codeConflict, "a request with this Idempotency-Key is in progress; retry later", "Idempotency-Key")
		return
	case errors.Is(err, ingest.ErrKeyReused):
		writeError(w, http.StatusUnprocessableEntity, codeValidation, "this Idempotency-Key was used with a different event", "Idempotency-Key")
		return
	case errors.Is(err, ingest.ErrUnavailable):
		s.log.Warn("event ingest: idempotency store", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, codeNotReady, "the idempotency store is unavailable; retry later", "")
		return
	case err != nil:
		s.log.Warn("event ingest: write failed", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, codeNotReady, "the event could not be written; retry later", "")
		return
	}
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, ingested{ID: res.ID})
}
