package api

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"

	"github.com/herald-dev/herald/internal/subscription"
)

// page is the list reply. NextCursor is empty on the last page.
type page struct {
	Data       []withHealth `json:"data"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// listSubscriptions answers one page of subscriptions in ID order. Filters
// match exactly: topic and event_type an element of the subscription's
// lists (event_type compares the stored pattern, e.g. "order.*"), status
// and tenant the field. The cursor is opaque to clients; it encodes the
// last ID of the previous page, so pages stay stable while subscriptions
// are added or deleted. With include=health each subscription carries its
// health counters, read in one round trip for the page.
func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			writeError(w, http.StatusBadRequest, codeValidation,
				"limit must be an integer from 1 to "+strconv.Itoa(MaxPageSize), "limit")
			return
		}
		limit = n
	}
	after := ""
	if v := q.Get("cursor"); v != "" {
		id, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(id) == 0 {
			writeError(w, http.StatusBadRequest, codeValidation, "cursor is not one this API returned", "cursor")
			return
		}
		after = string(id)
	}
	status := subscription.Status(q.Get("status"))
	switch status {
	case "", subscription.StatusActive, subscription.StatusPaused, subscription.StatusDisabled:
	default:
		writeError(w, http.StatusBadRequest, codeValidation, "status must be active, paused or disabled", "status")
		return
	}
	topic, eventType, tenant := q.Get("topic"), q.Get("event_type"), q.Get("tenant")
	includeHealth := false
	switch q.Get("include") {
	case "":
	case "health":
		includeHealth = true
	default:
		writeError(w, http.StatusBadRequest, codeValidation, `include must be "health"`, "include")
		return
	}

	subs := make([]*subscription.Subscription, 0, min(limit, 64))
	next := ""
	for _, sub := range s.store.List() {
		if sub.ID <= after ||
			(status != "" && sub.Status != status) ||
			(tenant != "" && sub.Tenant != tenant) ||
			(topic != "" && !slices.Contains(sub.Topics, topic)) ||
			(eventType != "" && !slices.Contains(sub.EventTypes, eventType)) {
			continue
		}
		if len(subs) == limit {
			next = base64.RawURLEncoding.EncodeToString([]byte(subs[limit-1].ID))
			break
		}
		subs = append(subs, sub)
	}
	out := page{Data: make([]withHealth, len(subs)), NextCursor: next}
	var health map[string]*healthView
	if includeHealth {
		health = s.healthOf(r.Context(), subs...)
	}
	for i, sub := range subs {
		out.Data[i] = withHealth{sub, health[sub.ID]}
	}
	writeJSON(w, http.StatusOK, out)
}
