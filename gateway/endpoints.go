package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
)

// ownEndpoints are the gateway's endpoints under /.postern/ (SPEC §4);
// ready reports extra readiness conditions (nil: none).
func (g *Gateway) ownEndpoints(ready func(context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(prefix+"login", g.handle(g.login))
	mux.Handle("POST "+prefix+"resume", g.handle(g.resume))
	mux.Handle("POST "+prefix+"resend", g.handle(g.resendForm))
	mux.Handle("POST "+prefix+"discard", g.handle(g.discardForm))
	mux.Handle(prefix+"logout", g.handle(g.logout))
	mux.Handle("GET "+prefix+"callback", g.handle(g.callback))
	mux.Handle("GET "+prefix+"signin", g.handle(g.signIn))
	mux.Handle("GET "+prefix+"handoff", g.handle(g.handoff))
	mux.Handle("GET "+prefix+"userinfo", g.handle(g.userinfo))
	mux.Handle(prefix+"auth", g.handle(g.forwardAuth))
	mux.HandleFunc("GET "+prefix+"jwks.json", g.jwks)
	mux.HandleFunc("GET "+prefix+"healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+prefix+"readyz", func(w http.ResponseWriter, r *http.Request) { g.readyz(w, r, ready) })
	mux.Handle("/", g.handle(func(w http.ResponseWriter, r *http.Request) error {
		return &httpError{Status: http.StatusNotFound, Code: "not_found", Title: "Not found",
			Message: "There is no such page of the gateway."}
	}))
	return mux
}

// userinfo answers the current identity as JSON.
func (g *Gateway) userinfo(w http.ResponseWriter, r *http.Request) error {
	who, err := g.identify(r.Context(), r, cookieFrom(r.Context()))
	if err != nil {
		return err
	}
	if who == nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthenticated", "message": "Not logged in."})
		return nil
	}
	groups := who.rec.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user": who.rec.User, "email": who.rec.Email, "groups": groups,
		"method": who.rec.Method, "expires": who.rec.Expires.UTC(),
	})
	return nil
}

// forwardAuth is the check for nginx auth_request, Traefik ForwardAuth and
// Caddy forward_auth: 200 with identity headers for a valid session allowed
// on the route of X-Forwarded-Host and X-Forwarded-Uri (or X-Original-URI),
// 403 when that route's policy refuses or no route matches, 401 without a
// session. The X-Forwarded-* headers are believed only from --trusted-proxy
// (forwardedTarget). It cannot stash bodies (the proxy in front does not pass them),
// and it cannot strip client-sent identity headers: the proxy in front must
// (see docs/deployment.md).
func (g *Gateway) forwardAuth(w http.ResponseWriter, r *http.Request) error {
	who, err := g.identify(r.Context(), r, cookieFrom(r.Context()))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if who == nil {
		w.WriteHeader(http.StatusUnauthorized)
		return nil
	}
	target, herr := g.forwardedTarget(r)
	if herr != nil {
		w.WriteHeader(herr.Status)
		return nil
	}
	// No route, no policy to pass: forward auth never lets through what
	// the gateway itself would not serve.
	if ri := g.route(target.host, target.path); ri < 0 || !g.opts.Routes[ri].Policy.Allows(who.identity()) {
		w.WriteHeader(http.StatusForbidden)
		return nil
	}
	g.setIdentity(h, who, g.opts.PublicURL)
	w.WriteHeader(http.StatusOK)
	return nil
}

// jwks publishes the public keys of X-Postern-Assertion.
func (g *Gateway) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if g.signer == nil {
		_, _ = w.Write([]byte(`{"keys":[]}`))
		return
	}
	_, _ = w.Write(g.signer.JWKS())
}

// readyz reports whether the gateway can serve: it is not shutting down,
// its store answers, and any extra conditions (the OIDC provider) hold.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request, ready func(context.Context) error) {
	if g.draining.Load() {
		http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := g.store.Ping(r.Context()); err != nil {
		g.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready: store", slog.String("error", err.Error()))
		http.Error(w, "not ready: store", http.StatusServiceUnavailable)
		return
	}
	if ready != nil {
		if err := ready(r.Context()); err != nil {
			g.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready: identity provider", slog.String("error", err.Error()))
			http.Error(w, "not ready: identity provider", http.StatusServiceUnavailable)
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
