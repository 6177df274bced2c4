package gateway

// TEMP: stand-ins so cmd/postern compiles before the gateway lands.
// Drop this file (and its commit) at merge.

import (
	"net/http"
)

// Gateway is a stand-in.
type Gateway struct{}

// New is a stand-in.
func New(opts Options, parts Parts) (*Gateway, error) { return &Gateway{}, nil }

// ServeHTTP is a stand-in.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "gateway stub", http.StatusNotImplemented)
}

// AdminHandler is a stand-in.
func (g *Gateway) AdminHandler() http.Handler { return http.NotFoundHandler() }

// NewTransport is a stand-in.
func NewTransport() *http.Transport { return http.DefaultTransport.(*http.Transport).Clone() }
