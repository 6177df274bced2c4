package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/postern/postern/session"
)

// prefix is where the gateway's own endpoints live; nothing under it is ever
// forwarded upstream.
const prefix = "/.postern/"

// Gateway is postern's request path: a router, as httputil.ReverseProxy
// is one type with a few hooks. It finds who a request comes from and its
// route, then hands it to the step that answers it: the route's proxy, the
// interceptor (no session: stash + 307), the replayer (after a login: the
// stash sent once) or the result keeper (the kept answer, shown once).
// Handlers return errors; fail turns them into answers. It is an
// http.Handler.
type Gateway struct {
	opts    Options
	store   *session.Store // sessions and logins in progress
	cookies *session.Cookies
	logins  loginMethods
	log     *slog.Logger
	now     func() time.Time

	bearer    BearerVerifier
	signer    AssertionSigner
	refreshes singleflight.Group // one OIDC token refresh per session at a time

	proxies     []*httputil.ReverseProxy // one per route, same index
	interceptor *interceptor
	replayer    *replayer
	results     *resultKeeper
	pages       *pages
	metrics     *metrics
	own         *http.ServeMux

	draining atomic.Bool // set by Drain: readyz answers 503
	ids      *requestIDs
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
		opts:    opts,
		store:   parts.Store,
		cookies: parts.Cookies,
		logins:  loginMethods{passwords: parts.Passwords, limiter: parts.Limiter, oidc: parts.OIDC},
		bearer:  parts.Bearer,
		signer:  parts.Assertion,
		log:     parts.Logger,
		now:     parts.Now,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = slog.New(withRequestID{g.log.Handler()})
	g.ids = newRequestIDs()
	if g.now == nil {
		g.now = time.Now
	}
	transport := parts.Transport
	if transport == nil {
		transport = NewTransport()
	}
	var err error
	if g.pages, err = newPages(opts.BrandName, opts.TemplatesDir); err != nil {
		return nil, fmt.Errorf("page templates: %w", err)
	}
	g.metrics = newMetrics()
	buffers := newBufferPool()
	// The routes are the gateway's own: resolving them writes into them.
	g.opts.Routes = slices.Clone(opts.Routes)
	for i := range g.opts.Routes {
		rt := &g.opts.Routes[i]
		if err := resolveUpstream(rt, transport); err != nil {
			return nil, fmt.Errorf("gateway: route %d: %w", i, err)
		}
		g.proxies = append(g.proxies, g.newProxy(rt, rt.transport, buffers))
	}
	pending := &pendingList{store: parts.Store, max: opts.StashMaxPending, ttl: opts.StashTTL, now: g.now, log: g.log}
	limits := &addrLimits{maxCount: opts.StashMaxPerAddress, maxBytes: opts.StashMaxBytesPerAddress, budget: opts.StoreBudget,
		count: parts.Store.Window("stash-addr-count", opts.StashTTL), bytes: parts.Store.Window("stash-addr-bytes", opts.StashTTL),
		inFlight: parts.Store.Window("stash-in-flight", inFlightWindow), usage: parts.Store,
		metrics: g.metrics, log: g.log, now: g.now}
	g.interceptor = &interceptor{opts: &g.opts, store: parts.Store, pending: pending, limits: limits, clientAddr: g.clientAddr,
		cookies: parts.Cookies, metrics: g.metrics, log: g.log, now: g.now}
	g.replayer = &replayer{store: parts.Store, routes: g, pending: pending, cookies: parts.Cookies, pages: g.pages,
		metrics: g.metrics, log: g.log, now: g.now, stashTTL: opts.StashTTL, maxKept: opts.StashMaxBody}
	g.results = &resultKeeper{store: parts.Store, replayer: g.replayer, cookies: parts.Cookies, pages: g.pages,
		metrics: g.metrics, log: g.log, now: g.now}
	g.own = g.ownEndpoints(parts.Ready)
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
		if rt.Upstream == nil || (rt.Upstream.Host == "" && rt.Upstream.Scheme != "unix") {
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
	st := &requestState{cookie: ck, id: g.requestID(r), route: -1}
	// The app, the answer and every log line carry the same id.
	r.Header.Set(RequestIDHeader, st.id)
	w.Header().Set(RequestIDHeader, st.id)
	var aw *accessWriter
	if g.opts.AccessLog {
		aw = &accessWriter{ResponseWriter: w}
		w = aw
	}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	var outcome string
	if r.URL.Path == prefix[:len(prefix)-1] || strings.HasPrefix(r.URL.Path, prefix) {
		g.own.ServeHTTP(w, r)
		outcome = "gateway"
	} else {
		var err error
		if outcome, err = g.serveUpstream(w, r, st); err != nil {
			g.fail(w, r, err)
		}
	}
	elapsed := g.now().Sub(start)
	if outcome != "gateway" {
		g.metrics.requests.WithLabelValues(outcome).Inc()
		g.metrics.duration.WithLabelValues(outcome).Observe(elapsed.Seconds())
	}
	if aw != nil {
		g.logAccess(r.Context(), r, st, aw, outcome, elapsed)
		return
	}
	// Without the access log, one line per request at debug level
	// (--log-level debug); never the query, which may carry secrets. Asked
	// first: the attributes cost an allocation even when not written.
	if g.log.Enabled(r.Context(), slog.LevelDebug) {
		g.log.LogAttrs(r.Context(), slog.LevelDebug, "request", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("outcome", outcome), slog.Duration("duration", elapsed))
	}
}

// serveUpstream handles every request that is not for the gateway itself.
// It returns the outcome label for metrics, and the error to answer with.
func (g *Gateway) serveUpstream(w http.ResponseWriter, r *http.Request, st *requestState) (string, error) {
	ck := st.cookie
	ri := g.route(r.Host, r.URL.Path)
	st.route = ri
	if ri < 0 {
		return "no_route", &httpError{Status: http.StatusNotFound, Code: "no_route",
			Title: "Not found", Message: "No application is configured for this address."}
	}
	if outcome, ok := g.passesWithoutLogin(&g.opts.Routes[ri], r); ok {
		// Straight to the app, as nobody: the proxy removes any identity
		// headers the client sent.
		g.proxies[ri].ServeHTTP(w, r)
		return outcome, nil
	}
	who, err := g.identify(r.Context(), r, ck)
	if err != nil {
		return "error", err
	}
	// A kept answer to a replayed submission is shown once, at the URL the
	// person submitted to; a send cut short is taken up there.
	if ref, ok := pendingResult(ck, r); ok {
		if handled, err := g.results.show(w, r, ck, who, ref); handled {
			return "result", err
		}
	}
	if who == nil {
		return g.interceptor.intercept(w, r, ck)
	}
	if !g.opts.Routes[ri].Policy.Allows(who.identity()) {
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "access denied by policy", slog.String("user", who.rec.User),
			slog.String("email", who.rec.Email), slog.String("path", r.URL.Path))
		return "forbidden", forbidden()
	}
	if herr := g.checkUpgradeOrigin(r, who); herr != nil {
		return "forbidden", herr
	}
	st.who = who
	g.proxies[ri].ServeHTTP(w, r)
	return "proxied", nil
}

// routeFor returns the route for host and path, and its proxy.
func (g *Gateway) routeFor(host, path string) (*Route, *httputil.ReverseProxy, bool) {
	ri := g.route(host, path)
	if ri < 0 {
		return nil, nil, false
	}
	return &g.opts.Routes[ri], g.proxies[ri], true
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
	id     string // X-Request-Id
	route  int    // index of the route, -1 for none (yet)
	cookie *session.Cookie
	who    *principal // set when the request is proxied for someone
	replay *send      // set when the request is a replay
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
