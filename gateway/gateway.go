package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/postern/postern/session"
)

// prefix is where the gateway's own endpoints live; nothing under it is ever
// forwarded upstream.
const prefix = "/.postern/"

// Gateway is postern's request path. It is an http.Handler.
type Gateway struct {
	opts    Options
	store   *session.Store
	cookies *session.Cookies
	logins  loginMethods
	log     *slog.Logger
	now     func() time.Time
	ready   func(context.Context) error

	bearer    BearerVerifier
	signer    AssertionSigner
	refreshes singleflight.Group // one OIDC token refresh per session at a time

	transport http.RoundTripper
	buffers   httputil.BufferPool      // copy buffers shared by the proxies
	proxies   []*httputil.ReverseProxy // one per route, same index
	pages     *pages
	metrics   *metrics
	own       *http.ServeMux
}

// New returns a Gateway for opts, built from parts.
func New(opts Options, parts Parts) (*Gateway, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if parts.Store == nil || parts.Cookies == nil {
		return nil, errors.New("gateway: Store and Cookies are required")
	}
	if parts.Passwords == nil && parts.OIDC == nil {
		return nil, errors.New("gateway: no login method configured")
	}
	g := &Gateway{
		opts:      opts,
		store:     parts.Store,
		cookies:   parts.Cookies,
		logins:    loginMethods{passwords: parts.Passwords, limiter: parts.Limiter, oidc: parts.OIDC},
		bearer:    parts.Bearer,
		signer:    parts.Assertion,
		log:       parts.Logger,
		now:       parts.Now,
		ready:     parts.Ready,
		transport: parts.Transport,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.transport == nil {
		g.transport = NewTransport()
	}
	var err error
	if g.pages, err = newPages(); err != nil {
		return nil, err
	}
	g.metrics = newMetrics()
	g.buffers = newBufferPool()
	for i := range opts.Routes {
		g.proxies = append(g.proxies, g.newProxy(&opts.Routes[i]))
	}
	g.own = g.ownEndpoints()
	return g, nil
}

func (o *Options) validate() error {
	var errs []error
	if o.PublicURL == nil || (o.PublicURL.Scheme != "http" && o.PublicURL.Scheme != "https") || o.PublicURL.Host == "" {
		errs = append(errs, errors.New("gateway: PublicURL must be an absolute http(s) URL"))
	}
	if len(o.Routes) == 0 {
		errs = append(errs, errors.New("gateway: at least one route is required"))
	}
	for i, rt := range o.Routes {
		if rt.Upstream == nil || rt.Upstream.Host == "" {
			errs = append(errs, fmt.Errorf("gateway: route %d has no upstream", i))
		}
		for _, p := range rt.PublicPaths {
			if !strings.HasPrefix(p, "/") {
				errs = append(errs, fmt.Errorf("gateway: route %d: public path %q must start with /", i, p))
			}
		}
	}
	if o.StashMaxBody <= 0 {
		errs = append(errs, errors.New("gateway: StashMaxBody must be positive"))
	}
	if o.StashTTL <= 0 || o.SessionTTL <= 0 {
		errs = append(errs, errors.New("gateway: StashTTL and SessionTTL must be positive"))
	}
	return errors.Join(errs...)
}

// ServeHTTP follows one request along the data path: the gateway's own
// endpoints; otherwise who is it, may they pass, then proxy, or stash and
// send the browser to the login.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	ck := g.cookies.Load(r)
	st := &requestState{cookie: ck}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	if r.URL.Path+"/" == prefix || strings.HasPrefix(r.URL.Path, prefix) {
		g.own.ServeHTTP(w, r)
		return
	}
	outcome := g.serveUpstream(w, r, st)
	elapsed := g.now().Sub(start)
	g.metrics.requests.WithLabelValues(outcome).Inc()
	g.metrics.duration.WithLabelValues(outcome).Observe(elapsed.Seconds())
	// One line per request at debug level (--log-level debug); never the
	// query, which may carry secrets.
	g.log.LogAttrs(r.Context(), slog.LevelDebug, "request", slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.String("outcome", outcome), slog.Duration("duration", elapsed))
}

// serveUpstream handles every request that is not for the gateway itself and
// returns the outcome label for metrics.
func (g *Gateway) serveUpstream(w http.ResponseWriter, r *http.Request, st *requestState) string {
	ck := st.cookie
	ri := g.route(r.Host, r.URL.Path)
	if ri < 0 {
		g.fail(w, r, &httpError{Status: http.StatusNotFound, Code: "no_route",
			Title: "Not found", Message: "No application is configured for this address."})
		return "no_route"
	}
	if outcome, ok := g.passesWithoutLogin(&g.opts.Routes[ri], r); ok {
		// Straight to the app, as nobody: the proxy removes any identity
		// headers the client sent.
		g.proxies[ri].ServeHTTP(w, r)
		return outcome
	}
	// A kept answer to a replayed submission is shown once, at the URL the
	// person submitted to.
	if ref, ok := pendingResult(ck, r); ok {
		g.deliverResult(w, r, ck, ref)
		return "result"
	}
	who, err := g.identify(r.Context(), r, ck)
	if err != nil {
		g.fail(w, r, err)
		return "error"
	}
	if who == nil {
		return g.intercept(w, r, ck)
	}
	if !g.opts.Routes[ri].Policy.Allows(who.identity()) {
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "access denied by policy", slog.String("user", who.rec.User),
			slog.String("email", who.rec.Email), slog.String("path", r.URL.Path))
		g.fail(w, r, forbidden())
		return "forbidden"
	}
	if herr := g.checkUpgradeOrigin(r, who); herr != nil {
		g.fail(w, r, herr)
		return "forbidden"
	}
	st.who = who
	g.proxies[ri].ServeHTTP(w, r)
	return "proxied"
}

// route returns the index of the first route matching host and path, or -1.
func (g *Gateway) route(host, path string) int {
	host = hostOnly(host)
	for i, rt := range g.opts.Routes {
		if rt.Host != "" && !strings.EqualFold(rt.Host, host) {
			continue
		}
		if p := rt.PathPrefix; p != "" && p != "/" && path != p && !strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			continue
		}
		return i
	}
	return -1
}

func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		return hostport[:i]
	}
	return hostport
}

func forbidden() *httpError {
	return &httpError{Status: http.StatusForbidden, Code: "forbidden", Title: "Access denied",
		Message: "You are logged in, but your account is not allowed to use this application."}
}

// AdminHandler serves the admin listener: Prometheus metrics at /metrics.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.handler())
	return mux
}

// requestState is what the gateway learns about a request on its way: set
// once in the request's context (one allocation, no request copies).
type requestState struct {
	cookie *session.Cookie
	who    *principal // set when the request is proxied for someone
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

func cookieFrom(ctx context.Context) *session.Cookie {
	if st := stateFrom(ctx); st != nil {
		return st.cookie
	}
	return nil
}

func csrfFrom(r *http.Request) string {
	if ck := cookieFrom(r.Context()); ck != nil {
		return ck.CSRF
	}
	return ""
}
