package api

import (
	"context"
	"net/http"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/history"
	"github.com/herald-dev/herald/internal/subscription"
)

// withHealth is a subscription with its health counters, as GET
// /v1/subscriptions/{id} (and lists with include=health) show it.
type withHealth struct {
	*subscription.Subscription
	Health *healthView `json:"health,omitempty"`
}

// healthView is history's counters plus the circuit state on the
// answering instance.
type healthView struct {
	history.Health
	// Circuit is closed, open or half_open; each instance keeps its own.
	Circuit string `json:"circuit,omitempty"`
}

// healthOf returns the health of subs, or nil when there is nothing to
// tell. A history that cannot be read is logged and left out: the
// subscription itself is still worth answering.
func (s *Server) healthOf(ctx context.Context, subs ...*subscription.Subscription) map[string]*healthView {
	if s.history == nil && s.circuits == nil {
		return nil
	}
	out := make(map[string]*healthView, len(subs))
	for _, sub := range subs {
		out[sub.ID] = &healthView{}
	}
	if s.history != nil {
		ids := make([]string, len(subs))
		for i, sub := range subs {
			ids[i] = sub.ID
		}
		hs, err := s.history.Health(ctx, ids...)
		if err != nil {
			s.log.Warn("reading subscription health failed", zap.Error(err))
		}
		for id, h := range hs {
			if v := out[id]; v != nil {
				v.Health = h
			}
		}
	}
	if s.circuits != nil {
		for _, sub := range subs {
			out[sub.ID].Circuit = s.circuits.State(sub.ID).String()
		}
	}
	return out
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.store.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, codeNotFound, "subscription not found", "")
		return
	}
	setETag(w, sub)
	writeJSON(w, http.StatusOK, withHealth{sub, s.healthOf(r.Context(), sub)[sub.ID]})
}
