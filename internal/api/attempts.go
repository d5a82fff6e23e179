package api

import (
	"net/http"
	"strconv"

	"github.com/herald-dev/herald/internal/history"
)

// Sizes of an attempts page.
const (
	DefaultAttempts = 20
	MaxAttempts     = history.DefaultCap
)

type attemptsPage struct {
	Data []history.Attempt `json:"data"`
}

// listAttempts answers the subscription's most recent attempts, newest
// first (limit, default 20, at most the history's cap).
func (s *Server) listAttempts(w http.ResponseWriter, r *http.Request) {
	if s.history == nil {
		unavailable(w, "attempt history")
		return
	}
	id := r.PathValue("id")
	limit := DefaultAttempts
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAttempts {
			writeError(w, http.StatusBadRequest, codeValidation,
				"limit must be an integer from 1 to "+strconv.Itoa(MaxAttempts), "limit")
			return
		}
		limit = n
	}
	if _, ok := s.store.Get(id); !ok {
		writeError(w, http.StatusNotFound, codeNotFound, "subscription not found", "")
		return
	}
	as, err := s.history.Recent(r.Context(), id, limit)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	if as == nil {
		as = []history.Attempt{}
	}
	writeJSON(w, http.StatusOK, attemptsPage{Data: as})
}
