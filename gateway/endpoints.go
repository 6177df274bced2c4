package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ownEndpoints are the gateway's endpoints under /.postern/ (SPEC §4).
func (g *Gateway) ownEndpoints() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(prefix+"login", g.login)
	mux.HandleFunc("POST "+prefix+"resume", g.resume)
	mux.HandleFunc(prefix+"logout", g.logout)
	mux.HandleFunc("GET "+prefix+"userinfo", g.userinfo)
	mux.HandleFunc(prefix+"auth", g.forwardAuth)
	mux.HandleFunc("GET "+prefix+"jwks.json", g.jwks)
	mux.HandleFunc("GET "+prefix+"healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+prefix+"readyz", g.readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.fail(w, r, &httpError{Status: http.StatusNotFound, Code: "not_found", Title: "Not found",
			Message: "There is no such page of the gateway."})
	})
	return mux
}

// userinfo answers the current identity as JSON.
func (g *Gateway) userinfo(w http.ResponseWriter, r *http.Request) {
	who, err := g.identify(r.Context(), r, cookieFrom(r.Context()))
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if who == nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthenticated", "message": "Not logged in."})
		return
	}
	groups := who.rec.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user": who.rec.User, "email": who.rec.Email, "groups": groups,
		"method": who.rec.Method, "expires": who.rec.Expires.UTC(),
	})
}

// forwardAuth is the check for nginx auth_request, Traefik ForwardAuth and
// Caddy forward_auth: 2xx with identity headers for a valid session, 401
// otherwise. It cannot stash bodies (the proxy in front does not pass them);
// see docs/deployment.md.
func (g *Gateway) forwardAuth(w http.ResponseWriter, r *http.Request) {
	who, err := g.identify(r.Context(), r, cookieFrom(r.Context()))
	if err != nil {
		g.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if who == nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	host, path := r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Uri")
	if path == "" {
		path = r.Header.Get("X-Original-URI")
	}
	if path == "" {
		path = "/"
	}
	if host == "" {
		host = r.Host
	}
	if ri := g.route(host, strings.SplitN(path, "?", 2)[0]); ri >= 0 && !g.opts.Routes[ri].Policy.Allows(who.identity()) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	g.setIdentity(h, who)
	w.WriteHeader(http.StatusOK)
}

// jwks publishes the public keys of X-Postern-Assertion.
func (g *Gateway) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"keys":[]}`))
}

// readyz reports whether the gateway can serve: its store answers, and
// any extra conditions (the OIDC provider) hold.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if err := g.store.Ping(r.Context()); err != nil {
		http.Error(w, "store not ready", http.StatusServiceUnavailable)
		return
	}
	if g.ready != nil {
		if err := g.ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
