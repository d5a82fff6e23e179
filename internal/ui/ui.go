// Package ui is herald's dashboard.
package ui

import (
	"net/http"

	"go.uber.org/zap"
)

type Option func(*Handler)

func WithLogger(l *zap.Logger) Option { return func(h *Handler) { h.log = l } }

type Handler struct {
	api http.Handler
	log *zap.Logger
}

func New(api http.Handler, opts ...Option) *Handler {
	h := &Handler{api: api, log: zap.NewNop()}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
