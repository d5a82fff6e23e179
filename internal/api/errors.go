package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/subscription"
)

// Error codes: the stable, machine-readable part of an error reply.
const (
	codeInvalidRequest     = "invalid_request"    // malformed JSON, query or header
	codeValidation         = "validation_failed"  // a field is unknown or its value invalid; field names it
	codeUnauthorized       = "unauthorized"       // missing, malformed or unknown bearer token
	codeForbidden          = "forbidden"          // valid token lacking the right; unused while there is one role
	codeNotFound           = "not_found"          // no such subscription or route
	codeMethodNotAllowed   = "method_not_allowed" // route exists, method does not
	codeConflict           = "conflict"           // a concurrent change won
	codePreconditionFailed = "precondition_failed"
	codeBodyTooLarge       = "body_too_large"
	codeRateLimited        = "rate_limited"
	codeNotReady           = "not_ready"
	codeInternal           = "internal"
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message, field string) {
	writeJSON(w, status, errorBody{errorDetail{Code: code, Message: message, Field: field}})
}

// writeDecodeError answers a request whose body could not be read as JSON.
func writeDecodeError(w http.ResponseWriter, err error) {
	var fe *subscription.FieldError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge,
			fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit), "")
	case errors.Is(err, subscription.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body exceeds the limit", "")
	case errors.As(err, &fe) && fe.Field != "":
		writeError(w, http.StatusBadRequest, codeValidation, fe.Message, fe.Field)
	case errors.As(err, &fe):
		// Not about one field: the body as a whole is not a JSON object.
		writeError(w, http.StatusBadRequest, codeInvalidRequest, fe.Message, "")
	default:
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "invalid JSON body: "+err.Error(), "")
	}
}

// writeStoreError maps an error from the store to its reply. Unknown errors
// are logged and answered with an opaque 500.
func (s *Server) writeStoreError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *subscription.FieldError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, codeValidation, fe.Message, fe.Field)
	case errors.Is(err, subscription.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, "subscription not found", "")
	case errors.Is(err, subscription.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, codeNotReady, "the subscription store is not running", "")
	case errors.Is(err, subscription.ErrConflict):
		writeError(w, http.StatusConflict, codeConflict, "the subscription was changed concurrently; fetch it and retry", "")
	default:
		s.log.Error("api request failed", zap.String("route", r.Pattern), zap.Error(err))
		writeError(w, http.StatusInternalServerError, codeInternal, "internal error", "")
	}
}
