package gateway

import (
	"log/slog"
	"net/http"
	"strings"
)

// forwardTargetHeaders name, in a forward-auth check, the request the proxy
// in front is asking about: which host, path and method, and so which
// route's policy is checked. They are believed only from --trusted-proxy.
var forwardTargetHeaders = []string{
	"X-Forwarded-Host", "X-Forwarded-Uri", "X-Original-URI",
	"X-Forwarded-Method", "X-Original-Method",
}

// forwardTarget is the request a forward-auth check is about.
type forwardTarget struct {
	host   string
	path   string // without the query
	method string
}

// forwardedTarget returns what a forward-auth request asks about: from a
// trusted proxy, the host, URI and method it names in X-Forwarded-*
// (X-Original-URI and X-Original-Method as nginx spells them); from anyone
// else, the request itself. A client that is not a trusted proxy and sends
// those headers anyway is refused rather than answered for another request:
// it would choose which route's policy is checked, and a proxy the operator
// forgot to name in --trusted-proxy would otherwise be answered for the
// wrong route without anyone noticing.
func (g *Gateway) forwardedTarget(r *http.Request) (forwardTarget, *httpError) {
	t := forwardTarget{host: r.Host, path: "/", method: r.Method}
	if !g.trusted(r.RemoteAddr) {
		for _, k := range forwardTargetHeaders {
			if r.Header.Get(k) != "" {
				g.metrics.refused.WithLabelValues("forward_auth_untrusted").Inc()
				g.log.LogAttrs(r.Context(), slog.LevelWarn,
					"forward auth refused: X-Forwarded-* from an address that is not a --trusted-proxy",
					slog.String("header", k), slog.String("addr", g.clientAddr(r)))
				return t, &httpError{Status: http.StatusForbidden, Code: "untrusted_forwarder", Title: "Access denied",
					Message: "This check only answers the proxy in front of the gateway (--trusted-proxy)."}
			}
		}
		return t, nil
	}
	if v := r.Header.Get("X-Forwarded-Host"); v != "" {
		t.host = v
	}
	uri := r.Header.Get("X-Forwarded-Uri")
	if uri == "" {
		uri = r.Header.Get("X-Original-URI")
	}
	if uri != "" {
		t.path, _, _ = strings.Cut(uri, "?")
	}
	for _, k := range []string{"X-Forwarded-Method", "X-Original-Method"} {
		if v := r.Header.Get(k); v != "" {
			t.method = strings.ToUpper(v)
			break
		}
	}
	return t, nil
}
