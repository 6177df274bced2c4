package gateway

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// NewTransport returns the transport the gateway uses to reach upstreams,
// tuned for a proxy: every request goes through it, so idle connections are
// kept per upstream host in numbers sized for concurrency (Go's default of
// two would open a new connection for most requests under load).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // upstreams are reached directly, never via HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// identityHeaders are set only by the gateway: whatever a client sends under
// these names is removed on every path.
var identityHeaders = []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Access-Token"}

// stripIdentity removes client-sent identity headers and every X-Postern-*
// header, also when spelled with underscores (X-Forwarded_User): servers in
// the CGI tradition read both spellings as the same variable.
func stripIdentity(h http.Header) {
	for k := range h {
		name := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
		if strings.HasPrefix(name, "X-Postern-") || slices.Contains(identityHeaders, name) {
			delete(h, k)
		}
	}
}

// setIdentity sets the identity headers the upstream trusts, and the signed
// assertion for audience (the upstream's origin) when configured.
func (g *Gateway) setIdentity(h http.Header, who *principal, audience *url.URL) {
	stripIdentity(h)
	h.Set("X-Forwarded-User", who.rec.User)
	if who.rec.Email != "" {
		h.Set("X-Forwarded-Email", who.rec.Email)
	}
	if len(who.rec.Groups) > 0 {
		h.Set("X-Forwarded-Groups", strings.Join(who.rec.Groups, ","))
	}
	if g.opts.PassAccessToken && who.rec.AccessToken != "" {
		h.Set("X-Forwarded-Access-Token", who.rec.AccessToken)
	}
	if g.signer != nil {
		aud := audience.Scheme + "://" + audience.Host
		if tok, err := g.signer.Sign(who.identity(), aud); err == nil {
			h.Set("X-Postern-Assertion", tok)
		} else {
			g.log.Error("signing the identity assertion failed", slog.String("error", err.Error()))
		}
	}
}

// dropOwnCookie removes the gateway's session cookie from a Cookie header
// bound upstream: the upstream has no business with it. A request that
// carries only the gateway's cookie (the common case) allocates nothing.
func dropOwnCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	if kept := appCookies(lines, name); kept != "" {
		h["Cookie"] = []string{kept}
	} else {
		delete(h, "Cookie")
	}
}

// appCookies is one Cookie header of the pairs in lines, in order, without
// the gateway's own cookie (name).
func appCookies(lines []string, name string) string {
	var b strings.Builder
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			if n, _, _ := strings.Cut(p, "="); n == name {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// mergeCookies is the Cookie header of a replay: every cookie the browser
// sent with the submission, then those it sends now under names the
// submission did not carry. Where both have a name the submission's value
// is used: it is what the app's page was built with, and path-scoped or
// SameSite=Strict cookies are missing or stale at the login.
func mergeCookies(submitted string, now []string) string {
	if submitted == "" {
		return strings.Join(now, "; ")
	}
	seen := make(map[string]bool)
	out := []string{submitted}
	for _, part := range strings.Split(submitted, ";") {
		n, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		seen[n] = true
	}
	for _, line := range now {
		for _, part := range strings.Split(line, ";") {
			p := strings.TrimSpace(part)
			if n, _, _ := strings.Cut(p, "="); p != "" && !seen[n] {
				out = append(out, p)
			}
		}
	}
	return strings.Join(out, "; ")
}

// newProxy returns the reverse proxy for one route. Live requests and
// replays (send, in replayer.go) both go through it: one set of rules for
// what reaches the upstream; a replay's answer and failure go back to its
// replayer instead of to the browser.
func (g *Gateway) newProxy(rt *Route, transport http.RoundTripper, buffers httputil.BufferPool) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rt.rewriteTo(pr)
			g.setForwarded(pr)
			dropOwnCookie(pr.Out.Header, g.cookies.Name())
			st := stateFrom(pr.In.Context())
			if st != nil && st.who != nil {
				g.setIdentity(pr.Out.Header, st.who, rt.Upstream)
			} else {
				stripIdentity(pr.Out.Header)
			}
			if st != nil && st.replay != nil {
				st.replay.rewrite(pr.Out)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if st := stateFrom(resp.Request.Context()); st != nil && st.replay != nil {
				return st.replay.answered(resp)
			}
			return nil
		},
		Transport:  transport,
		BufferPool: buffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if st := stateFrom(r.Context()); st != nil && st.replay != nil {
				st.replay.failed(err)
				return
			}
			g.fail(w, r, upstreamDown(err))
		},
	}
}

// rewriteTo points an outgoing request at the route's upstream.
func (rt *Route) rewriteTo(pr *httputil.ProxyRequest) {
	pr.SetURL(rt.target)
	if rt.keepHost {
		pr.Out.Host = pr.In.Host
	}
}

func upstreamDown(err error) *httpError {
	return &httpError{Status: http.StatusBadGateway, Code: "upstream_unavailable",
		Title: "The application is not answering", Cause: err,
		Message: "The gateway could not reach the application behind it. Please try again in a moment."}
}

// bufferPool lends the 32 KiB buffers ReverseProxy copies bodies with, so
// a proxied request does not allocate one.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }
