package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postern/postern/session"
)

// replayTimeout bounds one replay, from taking the stash to the end of the
// upstream's answer: a hung upstream cannot hold a taken stash forever.
const replayTimeout = 5 * time.Minute

// replayStore is what the replayer needs of the store.
type replayStore interface {
	TakeStash(ctx context.Context, id string) (session.Stored, io.ReadCloser, error)
	RestoreStash(ctx context.Context, id string) error
	DeleteStash(ctx context.Context, id string) error
	MarkReplayed(ctx context.Context, id string, state session.ReplayMark, ttl time.Duration) error
	ReplayStateOf(ctx context.Context, id string) (session.ReplayMark, error)
	PutResult(ctx context.Context, id string, res session.Result, body io.Reader, limit int64, ttl time.Duration) (int64, error)
	TakeResult(ctx context.Context, id string) (session.Result, io.ReadCloser, error)
	DeleteResult(ctx context.Context, id string) error
	// Owns reports whether the browser with id browser owns what was bound
	// to browser id owner (ids change at login: see rotateBrowser).
	Owns(ctx context.Context, browser, owner string) (bool, error)
}

// upstreams finds the route of a host and path, and the proxy that serves
// it; ok is false when no route matches.
type upstreams interface {
	routeFor(host, path string) (rt *Route, proxy *httputil.ReverseProxy, ok bool)
}

// replayer is the exactly-once step after a login: it takes the stash once,
// sends it through the route's proxy (the same ReverseProxy as live
// requests), keeps or passes on the answer, and settles.
type replayer struct {
	store    replayStore
	routes   upstreams
	pending  *pendingList
	cookies  *session.Cookies
	metrics  *metrics
	log      *slog.Logger
	stashTTL time.Duration // how long a submission waits; also how long its replay is remembered
	maxKept  int64         // the largest answer kept to be shown at the submitted URL
}

// replay consumes the stash once and sends it to the upstream, then
// delivers the answer. Taking the stash is one atomic step in the store,
// done before anything is sent: of two tabs, a double click or two replicas,
// exactly one gets it. It is put back only when nothing reached the upstream.
func (p *replayer) replay(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, id, rd string) error {
	// Once taken, the stash is sent whole or not at all, whatever the
	// browser does meanwhile: the store's reader and the upstream request
	// run on a context the browser cannot cancel, bounded by replayTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), replayTimeout)
	defer cancel()

	stored, body, err := p.take(ctx, id)
	if err != nil {
		return p.notTaken(w, r, ck, id, rd, err)
	}
	defer body.Close()
	s := &send{p: p, id: id, w: w, r: r, ck: ck, who: who, stored: stored}
	proxy, err := p.admit(ctx, w, s, body)
	if err != nil {
		return err
	}
	proxy.ServeHTTP(w, s.request(ctx, body))
	switch {
	case s.answerErr != nil:
		return s.answerErr
	case s.sendErr != nil:
		body.Close()
		return p.notAnswered(ctx, w, s, rd)
	}
	return nil
}

// take takes the stash for this replay. A stash that is gone because it
// was replayed is ErrTaken, not ErrNotFound.
func (p *replayer) take(ctx context.Context, id string) (session.Stored, io.ReadCloser, error) {
	stored, body, err := p.store.TakeStash(ctx, id)
	if errors.Is(err, session.ErrNotFound) {
		if state, serr := p.store.ReplayStateOf(ctx, id); serr == nil && state != session.NotReplayed {
			err = session.ErrTaken
		}
	}
	return stored, body, err
}

// done reports whether the stash id was sent already: its replay is on
// record.
func (p *replayer) done(ctx context.Context, id string) bool {
	state, err := p.store.ReplayStateOf(ctx, id)
	return err == nil && state != session.NotReplayed
}

// notTaken answers a completion whose stash could not be taken.
func (p *replayer) notTaken(w http.ResponseWriter, r *http.Request, ck *session.Cookie, id, rd string, err error) error {
	switch {
	case errors.Is(err, session.ErrTaken):
		// Another completion (a double click, another tab) is replaying it
		// or has; its answer will wait at the URL under the same id.
		p.metrics.replays.WithLabelValues("already_taken").Inc()
		_ = ck.AddResult(session.ResultRef{URL: rd, ID: id})
		if err := saveCookie(p.cookies, w, r, ck); err != nil {
			return err
		}
		seeOther(w, rd)
		return nil
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		p.metrics.replays.WithLabelValues("expired").Inc()
		if err := saveCookie(p.cookies, w, r, ck); err != nil {
			return err
		}
		return &httpError{Status: http.StatusGone, Code: "stash_expired",
			Title: "Your submission has expired", BackURL: rd,
			Message: "You are logged in now, but the submission made before the login was kept for " +
				formatDuration(p.stashTTL) + " only, or is unknown. It was not sent. Please go back and submit it again."}
	}
	return storeError(err)
}

// admit checks that a taken stash may be sent by this person, to a route
// that still exists and lets them pass, and returns that route's proxy.
// What may not be sent is put back (another browser's) or discarded.
func (p *replayer) admit(ctx context.Context, w http.ResponseWriter, s *send, body io.Closer) (*httputil.ReverseProxy, error) {
	owned, oerr := p.store.Owns(ctx, s.ck.BrowserID, s.stored.Owner)
	if oerr != nil || !owned {
		// Never replay another browser's submission (nor one whose owner
		// cannot be checked now).
		body.Close()
		if err := p.store.RestoreStash(ctx, s.id); err != nil {
			p.log.LogAttrs(ctx, slog.LevelError, "restoring a foreign stash failed", slog.String("error", err.Error()))
		}
		if oerr != nil {
			return nil, storeError(oerr)
		}
		return nil, &httpError{Status: http.StatusForbidden, Code: "stash_foreign", Title: "Not your submission",
			Message: "This pending submission was made in another browser, so it will not be sent from this one."}
	}
	target, err := url.ParseRequestURI(s.stored.URL)
	var (
		rt    *Route
		proxy *httputil.ReverseProxy
		ok    bool
	)
	if err == nil {
		rt, proxy, ok = p.routes.routeFor(s.stored.Host, target.Path)
	}
	if !ok {
		p.discard(ctx, s.id, "no_route")
		p.pending.release(ctx, s.stored.Owner, s.id)
		return nil, &httpError{Status: http.StatusNotFound, Code: "no_route", Title: "Not found",
			Message: "The application this submission was for is no longer configured. It was not sent."}
	}
	if !rt.Policy.Allows(s.who.identity()) {
		p.discard(ctx, s.id, "forbidden")
		p.pending.release(ctx, s.stored.Owner, s.id)
		if err := saveCookie(p.cookies, w, s.r, s.ck); err != nil {
			return nil, err
		}
		e := forbidden()
		e.Message += " Your pending submission was discarded and not sent."
		return nil, e
	}
	s.target, s.upstream = target, rt.target
	return proxy, nil
}

// notAnswered answers a replay whose upstream gave no answer. If nothing
// reached the upstream the stash goes back, untouched, and the person may
// retry; otherwise it is never sent again.
func (p *replayer) notAnswered(ctx context.Context, w http.ResponseWriter, s *send, rd string) error {
	err := s.sendErr
	if !s.wrote.Load() {
		rerr := p.store.RestoreStash(ctx, s.id)
		_ = saveCookie(p.cookies, w, s.r, s.ck)
		if rerr == nil {
			p.metrics.replays.WithLabelValues("refused_kept").Inc()
			p.log.LogAttrs(ctx, slog.LevelWarn, "replay refused by upstream, stash kept", slog.String("error", err.Error()))
			return &httpError{Status: http.StatusBadGateway, Code: "upstream_unavailable",
				Title: "The application is not answering", RetryStash: s.id, BackURL: rd, Cause: err,
				Message: "You are logged in, but the application could not be reached. Your submission is kept and was not sent; try again in a moment."}
		}
		// Not sent, and it could not be put back either: say exactly that.
		p.metrics.replays.WithLabelValues("refused_lost").Inc()
		p.pending.release(ctx, s.stored.Owner, s.id)
		return &httpError{Status: http.StatusBadGateway, Code: "upstream_unavailable",
			Title: "The application is not answering", BackURL: rd, Cause: errors.Join(err, rerr),
			Message: "You are logged in, but the application could not be reached, and your submission could not be kept for a retry. It was not sent: please go back and submit it again."}
	}
	p.discard(ctx, s.id, "failed")
	p.settle(ctx, s.id)
	p.pending.release(ctx, s.stored.Owner, s.id)
	_ = saveCookie(p.cookies, w, s.r, s.ck)
	return &httpError{Status: http.StatusBadGateway, Code: "upstream_failed",
		Title: "The application did not answer", BackURL: rd, Cause: err,
		Message: "Your submission was sent to the application, but no answer came back. It will not be sent again; check in the application whether it arrived."}
}

// consumed records that the upstream answered a replay: the stash is gone
// for good, and its browser's place is free.
func (p *replayer) consumed(ctx context.Context, s *send, status int) {
	p.discard(ctx, s.id, "")
	p.pending.release(ctx, s.stored.Owner, s.id)
	p.metrics.replays.WithLabelValues("replayed").Inc()
	p.log.LogAttrs(ctx, slog.LevelInfo, "submission replayed", slog.String("user", s.who.rec.User),
		slog.String("method", s.stored.Method), slog.String("path", s.target.Path), slog.Int("status", status))
}

// settle records that nothing more of a replay's answer will be kept, so a
// page waiting for it stops waiting.
func (p *replayer) settle(ctx context.Context, id string) {
	if err := p.store.MarkReplayed(context.WithoutCancel(ctx), id, session.Settled, p.stashTTL); err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "marking a replay settled failed", slog.String("error", err.Error()))
	}
}

// discard deletes a consumed stash and, for a replayed one (why == ""),
// records that it was replayed. A failure only leaves it taken, which can
// never be replayed, and expires with its TTL.
func (p *replayer) discard(ctx context.Context, id, why string) {
	if why == "" {
		if err := p.store.MarkReplayed(context.WithoutCancel(ctx), id, session.Replayed, p.stashTTL); err != nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "marking a stash replayed failed", slog.String("error", err.Error()))
		}
	}
	if err := p.store.DeleteStash(context.WithoutCancel(ctx), id); err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "deleting a consumed stash failed", slog.String("error", err.Error()))
	}
	if why != "" {
		p.metrics.replays.WithLabelValues(why).Inc()
	}
}

// send is one replay on its way through a route's proxy. The proxy's
// Rewrite adds what marks it as a replay; its ModifyResponse hands the
// answer to the replayer (answer.go); its ErrorHandler records a failure
// here for replay to answer.
type send struct {
	p        *replayer
	id       string
	w        http.ResponseWriter // the browser's answer
	r        *http.Request       // the request that completed the login
	ck       *session.Cookie
	who      *principal
	stored   session.Stored
	target   *url.URL // the stored path and query
	upstream *url.URL

	wrote     atomic.Bool // some of the request may have reached the upstream
	sendErr   error       // the upstream gave no answer
	answerErr error       // the answer could not be handled
}

// request is the inbound request the proxy sends for the stash: the
// stored method, URL, headers, cookies and body; the forwarding chain (and
// cookies the submission did not carry) of the request that completed the
// login, from the same browser. The proxy then treats it as it treats a
// live request.
func (s *send) request(ctx context.Context, body io.Reader) *http.Request {
	r, stored := s.r, s.stored
	in := &http.Request{Method: stored.Method, URL: s.target, Host: stored.Host, Header: stored.Header.Clone(),
		RemoteAddr: r.RemoteAddr, TLS: r.TLS, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		ContentLength: stored.Size, Body: io.NopCloser(body)}
	if in.Header == nil {
		in.Header = make(http.Header)
	}
	// The replay carries the id of the request that completed the login,
	// so the app's log matches the gateway's.
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", RequestIDHeader} {
		if v := r.Header.Values(k); len(v) > 0 {
			in.Header[k] = v
		}
	}
	// The app's cookies as the browser held them when it submitted, and
	// those it sends now; the proxy drops the gateway's own.
	if c := mergeCookies(stored.Cookie, r.Header.Values("Cookie")); c != "" {
		in.Header.Set("Cookie", c)
	}
	if stored.Size == 0 {
		in.Body = http.NoBody
	}
	ctx = context.WithValue(ctx, stateKey{}, &requestState{id: requestIDFrom(r.Context()), route: -1, cookie: s.ck, who: s.who, replay: s})
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { s.wrote.Store(true) },
	})
	return in.WithContext(ctx)
}

// rewrite marks the request bound upstream as a replay of one submission;
// identity headers are set already. Idempotency-Key is a structured-field
// string (draft-ietf-httpapi-idempotency-key-header), the same for every
// send of the submission: an app that keeps the keys it has seen never
// acts on one submission twice (docs/idempotency.md).
func (s *send) rewrite(out *http.Request) {
	out.Header.Set("X-Postern-Replayed", "true")
	out.Header.Del("Idempotency-Key")
	if k := s.stored.IdempotencyKey; k != "" {
		out.Header.Set("Idempotency-Key", `"`+k+`"`)
	}
	// Never re-sent by the transport: a request it cannot rewind is not
	// retried, and a bodiless one with an Idempotency-Key would be (on a
	// reused connection that fails before the answer). An empty reader
	// goes on the wire exactly as no body does.
	out.GetBody = nil
	if out.Body == nil || out.Body == http.NoBody {
		out.Body, out.ContentLength = io.NopCloser(strings.NewReader("")), 0
	}
}

// answered hands the upstream's answer to the replayer; an error here is
// answered by replay.
func (s *send) answered(resp *http.Response) error {
	if err := s.p.answer(s, resp); err != nil {
		s.answerErr = err
		return err
	}
	return nil
}

// failed records that the upstream gave no answer (or the answer could
// not be handled, already recorded).
func (s *send) failed(err error) {
	if s.answerErr == nil {
		s.sendErr = err
	}
}
