package gateway

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// isUpgrade reports whether r asks to switch protocols (a WebSocket
// handshake is the one a browser page can start).
func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// checkUpgradeOrigin refuses a protocol upgrade authenticated by the
// session cookie whose Origin is another site's: cross-site WebSocket
// hijacking. The browser attaches the cookie to a WebSocket handshake that
// any page starts (SameSite=Lax does not stop a sibling subdomain, which is
// the same site), and the Origin header is the only sign of who started it.
// An upgrade authenticated by a bearer token is not affected: a page cannot
// make the browser send one. An upgrade without Origin does not come from a
// browser page and passes.
func (g *Gateway) checkUpgradeOrigin(r *http.Request, who *principal) *httpError {
	if who.sid == "" || !isUpgrade(r) {
		return nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" || g.sameOrigin(r, origin) {
		return nil
	}
	g.metrics.refused.WithLabelValues("websocket_origin").Inc()
	g.log.LogAttrs(r.Context(), slog.LevelWarn, "upgrade refused: Origin is another site's (cross-site WebSocket)",
		slog.String("origin", origin), slog.String("path", r.URL.Path), slog.String("user", who.rec.User),
		slog.String("addr", g.clientAddr(r)))
	return &httpError{Status: http.StatusForbidden, Code: "cross_origin_upgrade", Title: "Connection refused",
		Message: "This connection was opened by a page of another site, so your login is not lent to it."}
}

// sameOrigin reports whether origin (an Origin header) is the gateway's
// public origin or the origin of the host the request was sent to (routes
// by host serve several origins), with the public URL's scheme.
func (g *Gateway) sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" {
		return false // includes Origin: null
	}
	public := g.opts.PublicURL
	if !strings.EqualFold(u.Scheme, public.Scheme) {
		return false
	}
	return strings.EqualFold(u.Host, public.Host) || strings.EqualFold(u.Host, r.Host)
}
