package gateway

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// trusted reports whether the connection comes from a proxy the operator
// put in front of the gateway.
func (g *Gateway) trusted(remoteAddr string) bool {
	if len(g.opts.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return g.trustedAddr(a.Unmap())
}

func (g *Gateway) trustedAddr(a netip.Addr) bool {
	for _, p := range g.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address of the person: the connection's peer, or, when
// the peer is a trusted proxy, the right-most address in X-Forwarded-For
// that is not one (what a client prepends itself is never believed).
func (g *Gateway) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !g.trusted(r.RemoteAddr) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !g.trustedAddr(a.Unmap()) {
			return a.Unmap().String()
		}
	}
	return host
}

// setForwarded sets X-Forwarded-For, -Proto and -Host on a request bound
// upstream: from this connection, or, behind a trusted proxy, the proxy's
// chain with this hop appended.
func (g *Gateway) setForwarded(pr *httputil.ProxyRequest) {
	pr.Out.Header.Del("X-Forwarded-For")
	trusted := g.trusted(pr.In.RemoteAddr)
	if trusted {
		if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			pr.Out.Header.Set("X-Forwarded-For", strings.Join(prior, ", "))
		}
	}
	pr.SetXForwarded()
	if trusted {
		if v := pr.In.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
		if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
	}
}
