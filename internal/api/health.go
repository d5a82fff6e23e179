package api

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// readyTimeout bounds a readiness check so a hung dependency answers 503
// instead of holding the probe open.
const readyTimeout = 2 * time.Second

type healthReply struct {
	Status string `json:"status"`
}

// healthz answers 200 while the process can run handlers at all.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, healthReply{"ok"})
}

// readyz answers 200 only when the instance can serve: its subscription
// view caught up and its dependencies reachable; otherwise 503 with why.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.checkReady(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, codeNotReady, err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, healthReply{"ready"})
}

func (s *Server) checkReady(ctx context.Context) error {
	if s.ready != nil {
		return s.ready(ctx)
	}
	if !s.store.Ready() {
		return errNotCaughtUp
	}
	return nil
}

var errNotCaughtUp = errors.New("subscriptions not caught up")

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		writeError(w, http.StatusNotFound, codeNotFound, "metrics are not enabled", "")
		return
	}
	s.metrics.ServeHTTP(w, r)
}
