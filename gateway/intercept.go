package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/session"
)

// stashHeaders are the request headers kept with a stash: what the upstream
// needs to understand the body and the submission. The app's cookies are
// kept too, apart (Stored.Cookie), without the gateway's own.
var stashHeaders = []string{
	"Content-Type", "Content-Encoding", "Content-Language",
	"Accept", "Accept-Language", "User-Agent", "Referer", "Origin",
}

// stasher is what the interceptor needs of the store: keep a submission in
// one call, and the usage its budget is checked against.
type stasher interface {
	PutStash(ctx context.Context, id string, req session.Stored, body io.Reader, limit int64, ttl time.Duration) (int64, error)
	Discard(ctx context.Context, id, owner string) error
	Usage(ctx context.Context) (int64, bool, error)
	SaveStashSummary(ctx context.Context, id string, s session.StashSummary, ttl time.Duration) error
}

// interceptor answers requests that come with no valid session: it decides
// whether a submission may be kept (the cross-site rule, the limits) and
// keeps it in one call to the store, then sends the browser to the login.
type interceptor struct {
	opts    *Options
	store   stasher
	pending *pendingList
	limits  *addrLimits
	// clientAddr is the address of the person behind the request (behind a
	// --trusted-proxy, from X-Forwarded-For).
	clientAddr func(*http.Request) string
	cookies    *session.Cookies
	metrics    *metrics
	log        *slog.Logger
	now        func() time.Time
}

// intercept answers a request that comes with no valid session: API clients
// get 401; a browser's GET or HEAD is sent to the login and back; any other
// method is stashed (after the cross-site rule) and sent to the login with a
// 307, which the browser follows with the same method and body. It returns
// the outcome label for metrics, and the error to answer with, if any.
func (in *interceptor) intercept(w http.ResponseWriter, r *http.Request, ck *session.Cookie) (string, error) {
	if !wantsHTML(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="postern"`)
		return "unauthenticated", &httpError{Status: http.StatusUnauthorized, Code: "unauthenticated",
			Title: "Login required", Message: "This resource needs a login or a bearer token."}
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	case http.MethodGet, http.MethodHead:
		if err := saveCookie(in.cookies, w, r, ck); err != nil {
			return "error", err
		}
		http.Redirect(w, r, loginURL("", r.URL.RequestURI()), http.StatusTemporaryRedirect)
		return "login", nil
	default:
		// Other methods (OPTIONS, PROPFIND, ...) are not kept across a login.
		return "unauthenticated", &httpError{Status: http.StatusUnauthorized, Code: "unauthenticated",
			Title: "Login required", Message: "This request needs a login.", Login: loginURL("", "/")}
	}
	if herr := in.refuse(r); herr != nil {
		return herr.Code, herr
	}
	id := session.NewID()
	n, err := in.keep(r, ck, id)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return he.Code, err
		}
		return "error", err
	}
	// The cookie points at it from the submitted URL: after the login, or
	// after a crash, the person's next visit there finds where it is.
	keepRef(ck, r.URL.RequestURI(), id)
	if err := saveCookie(in.cookies, w, r, ck); err != nil {
		_ = in.store.Discard(r.Context(), id, ck.BrowserID)
		return "error", err
	}
	in.metrics.stashes.WithLabelValues("kept").Inc()
	in.log.LogAttrs(r.Context(), slog.LevelInfo, "submission stashed for login",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int64("bytes", n))
	// 307 keeps the method: the browser re-sends the body to the login,
	// which does not read it; the body was stored once, here.
	http.Redirect(w, r, loginURL(id, r.URL.RequestURI()), http.StatusTemporaryRedirect)
	return "stashed", nil
}

// refuse says why a submission may not be kept across a login, or nil.
func (in *interceptor) refuse(r *http.Request) *httpError {
	if strings.HasPrefix(r.URL.RequestURI(), "//") {
		// After the login the browser is sent back to this address, and
		// "//host/..." would leave the gateway's origin.
		return &httpError{Status: http.StatusBadRequest, Code: "bad_target", Title: "Submission not kept",
			Message: "This address cannot be kept across a login. Log in first, then send it again.", Login: loginURL("", "/")}
	}
	if !in.opts.AllowCrossSiteStash && in.crossSite(r) {
		// The submission is dropped, not kept: a login must never turn a
		// forged cross-site request into a real one.
		in.metrics.stashes.WithLabelValues("cross_site").Inc()
		in.log.LogAttrs(r.Context(), slog.LevelInfo, "cross-site submission refused (not kept)",
			slog.String("path", r.URL.Path), slog.String("origin", r.Header.Get("Origin")),
			slog.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")), slog.String("public_url", in.opts.PublicURL.String()))
		return &httpError{Status: http.StatusForbidden, Code: "cross_site",
			Title: "Submission not kept",
			Message: "This form was sent from another site while you were not logged in. " +
				"For your safety it was not kept and will not be sent. Log in, then submit it again from this site.",
			Login: loginURL("", sameOriginPath(r.Referer(), in.opts.PublicURL, "/"))}
	}
	if r.ContentLength > in.opts.StashMaxBody {
		in.metrics.stashes.WithLabelValues("too_large").Inc()
		return in.tooLarge(r)
	}
	return nil
}

// keep stores the submission under id in one call to the store, after the
// limits that protect the store admit it. It returns the body bytes kept.
func (in *interceptor) keep(r *http.Request, ck *session.Cookie, id string) (int64, error) {
	stored := session.Stored{
		Method:  r.Method,
		Host:    r.Host,
		URL:     r.URL.RequestURI(),
		Header:  make(http.Header),
		Owner:   ck.BrowserID,
		Created: in.now(),
		Size:    r.ContentLength,
		// Path-scoped and SameSite=Strict cookies never reach the login
		// (or the OIDC callback, which arrives cross-site): the replay
		// carries those the browser sent with the submission.
		Cookie: appCookies(r.Header.Values("Cookie"), in.cookies.Name()),
		// The same for every send of this submission, so the app can tell
		// a send again from a new submission.
		IdempotencyKey: session.NewID(),
	}
	for _, k := range stashHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			stored.Header[k] = v
		}
	}
	if herr := in.admit(r, ck, id); herr != nil {
		return 0, herr
	}
	addr := in.clientAddr(r)
	res, err := in.limits.begin(r.Context(), addrKeyOf(addr), r.ContentLength)
	if err != nil {
		in.pending.release(r.Context(), ck.BrowserID, id)
		return 0, in.limitRefusal(r, addr, err)
	}
	var body *clientBody
	if r.ContentLength < 0 {
		// Of unknown length (chunked): counted as it is read, and stopped
		// at a limit.
		body = &clientBody{r: &meteredBody{ctx: r.Context(), r: r.Body, res: res}}
	} else {
		body = &clientBody{r: r.Body}
	}
	n, err := in.store.PutStash(r.Context(), id, stored, body, in.opts.StashMaxBody, in.opts.StashTTL)
	if err != nil {
		in.pending.release(r.Context(), ck.BrowserID, id)
		if rerr := res.release(r.Context()); rerr != nil {
			in.log.LogAttrs(r.Context(), slog.LevelWarn, "releasing a submission's count failed", slog.String("error", rerr.Error()))
		}
	} else if kerr := res.kept(r.Context(), n); kerr != nil {
		in.log.LogAttrs(r.Context(), slog.LevelWarn, "settling a submission's count failed", slog.String("error", kerr.Error()))
	}
	var le *limitError
	switch {
	case errors.As(err, &le):
		return 0, in.limitRefusal(r, addr, err)
	case errors.Is(err, session.ErrTooLarge):
		in.metrics.stashes.WithLabelValues("too_large").Inc()
		return 0, in.tooLarge(r)
	case err != nil && body.err != nil:
		return 0, &httpError{Status: http.StatusBadRequest, Code: "bad_body", Title: "Submission incomplete",
			Message: "The submission could not be read completely, so it was not kept. Please send it again.", Cause: err}
	case err != nil:
		return 0, fmt.Errorf("keeping a submission: %w", err)
	}
	// What the login page tells the person is waiting. It is only shown,
	// so a failure here costs the sentence, not the submission.
	sum := session.StashSummary{Method: r.Method, Path: r.URL.Path, Owner: ck.BrowserID}
	if err := in.store.SaveStashSummary(r.Context(), id, sum, in.opts.StashTTL); err != nil {
		in.log.LogAttrs(r.Context(), slog.LevelWarn, "keeping a submission's summary failed", slog.String("error", err.Error()))
	}
	return n, nil
}

// admit applies the limits that protect the store before a submission is
// kept: the store's budget, and how many submissions one browser may have
// waiting. What is refused gets a page that says why.
func (in *interceptor) admit(r *http.Request, ck *session.Cookie, id string) *httpError {
	ctx := r.Context()
	if in.opts.StoreBudget > 0 {
		used, ok, err := in.store.Usage(ctx)
		if err != nil {
			return storeError(err)
		}
		if ok && used+max(r.ContentLength, 0) > in.opts.StoreBudget {
			in.metrics.stashes.WithLabelValues("store_full").Inc()
			in.log.LogAttrs(ctx, slog.LevelWarn, "store budget reached, submission not kept",
				slog.Int64("used", used), slog.Int64("budget", in.opts.StoreBudget))
			return &httpError{Status: http.StatusServiceUnavailable, Code: "store_full", RetryAfter: time.Minute,
				Title: "Submission not kept", Login: loginURL("", sameOriginPath(r.Referer(), in.opts.PublicURL, "/")),
				Message: "You are not logged in, and the gateway cannot keep more submissions right now. " +
					"It was not kept. Log in first, then send it again."}
		}
	}
	err := in.pending.reserve(ctx, ck.BrowserID, id)
	switch {
	case errors.Is(err, session.ErrLimit):
		in.metrics.stashes.WithLabelValues("too_many").Inc()
		return &httpError{Status: http.StatusTooManyRequests, Code: "too_many",
			Title: "Too many submissions waiting", Login: loginURL("", sameOriginPath(r.Referer(), in.opts.PublicURL, "/")),
			Message: "This browser already has " + strconv.Itoa(in.opts.StashMaxPending) +
				" submissions waiting for a login, so this one was not kept. Log in from a tab that shows the login page: " +
				"its submission is sent, and the other waiting tabs offer to send theirs. Then submit this one again."}
	case err != nil:
		return storeError(err)
	}
	return nil
}

// limitRefusal answers a submission a limit of the store did not admit:
// 429 (503 for the store's budget), counted and logged. A body of declared
// length is read to its end first (it is at most --stash-max-body), so the
// browser, still sending it, receives the page; a body of unknown length
// is cut where the limit stopped it. Errors of the store pass through.
func (in *interceptor) limitRefusal(r *http.Request, addr string, err error) error {
	var le *limitError
	if !errors.As(err, &le) {
		return storeError(err)
	}
	if r.ContentLength > 0 && r.ContentLength <= in.opts.StashMaxBody {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, r.ContentLength))
	}
	return in.limits.refusal(r, le, addr, loginURL("", sameOriginPath(r.Referer(), in.opts.PublicURL, "/")))
}

// loginURL is the gateway's login with the pending stash and return path.
func loginURL(stash, rd string) string {
	q := url.Values{}
	if stash != "" {
		q.Set("stash", stash)
	}
	if rd != "" && rd != "/" {
		q.Set("rd", rd)
	}
	if len(q) == 0 {
		return prefix + "login"
	}
	return prefix + "login?" + q.Encode()
}

func (in *interceptor) tooLarge(r *http.Request) *httpError {
	return &httpError{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
		Title: "Submission too large to keep",
		Message: "You are not logged in, and this submission is larger than the " + formatBytes(in.opts.StashMaxBody) +
			" the gateway can keep while you log in. It was not kept. Log in first, then send it again.",
		Login: loginURL("", sameOriginPath(r.Referer(), in.opts.PublicURL, r.URL.RequestURI()))}
}

// crossSite reports whether a submission comes from another site: the
// browser says so (Sec-Fetch-Site), or its Origin is neither the gateway's
// public origin nor the origin of the host it was sent to (routes by host
// serve several origins).
func (in *interceptor) crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		// same-site is still another origin (a sibling subdomain).
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return true // includes Origin: null
	}
	public := in.opts.PublicURL
	if !strings.EqualFold(u.Scheme, public.Scheme) {
		return true
	}
	return !strings.EqualFold(u.Host, public.Host) && !strings.EqualFold(u.Host, r.Host)
}

// sameOriginPath returns raw as a path on the gateway when it is one (an
// absolute URL on public's origin, or an absolute path), else fallback.
// It is how every return URL is checked: never another origin.
func sameOriginPath(raw string, public *url.URL, fallback string) string {
	if raw == "" || strings.ContainsAny(raw, "\\\r\n\t") {
		return fallback
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fallback
	}
	if u.Scheme != "" || u.Host != "" {
		if public == nil || !strings.EqualFold(u.Scheme, public.Scheme) || !strings.EqualFold(u.Host, public.Host) {
			return fallback
		}
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return fallback
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

// clientBody remembers a failure to read the client's body, so that such a
// failure is answered as the client's (400), not the store's.
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}
