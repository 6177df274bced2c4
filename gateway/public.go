package gateway

import (
	"net/http"
	"net/url"
	"strings"
)

// passesWithoutLogin reports whether a request goes to the app with no login
// at all: a public route or path (webhooks, health checks, static assets),
// or a CORS preflight when SkipAuthPreflight is on. Such requests are never
// stashed and carry no identity: the proxy removes client-sent identity
// headers from them like from any other request. The outcome names why.
func (g *Gateway) passesWithoutLogin(rt *Route, r *http.Request) (outcome string, ok bool) {
	if rt.Public || rt.publicPath(r.URL) {
		return "public", true
	}
	if g.opts.SkipAuthPreflight && isPreflight(r) {
		return "preflight", true
	}
	return "", false
}

// isPreflight reports whether r is a CORS preflight: OPTIONS with Origin and
// Access-Control-Request-Method. Browsers send preflights without cookies,
// so they can never carry a login; any other OPTIONS still needs one.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// publicPath reports whether the request's path lies under one of the
// route's public prefixes, on a segment boundary ("/hooks" covers /hooks and
// /hooks/stripe, not /hookshot). A path an upstream might read as another one
// (dot segments, encoded slashes, dots or backslashes) is never public: it
// needs a login, so "/hooks/../admin" cannot slip past it.
func (rt *Route) publicPath(u *url.URL) bool {
	if len(rt.PublicPaths) == 0 {
		return false
	}
	p := u.EscapedPath()
	if ambiguousPath(p) {
		return false
	}
	for _, pre := range rt.PublicPaths {
		if underPrefix(p, pre) {
			return true
		}
	}
	return false
}

// underPrefix reports whether path is prefix or lies below it, on a segment
// boundary; "/" and "" cover every path.
func underPrefix(path, prefix string) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, strings.TrimSuffix(prefix, "/")+"/")
}

// ambiguousPath reports whether an escaped path holds something a server
// behind the gateway may resolve differently than a plain prefix match:
// "." or ".." segments, or an escaped slash, backslash or dot.
func ambiguousPath(p string) bool {
	if strings.ContainsRune(p, '\\') {
		return true
	}
	lower := strings.ToLower(p)
	for _, esc := range []string{"%2f", "%5c", "%2e"} {
		if strings.Contains(lower, esc) {
			return true
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
