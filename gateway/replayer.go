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
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/session"
)

const (
	// replayTimeout bounds one send, from the lease to the end of the
	// upstream's answer: a hung upstream cannot hold a submission forever.
	replayTimeout = 5 * time.Minute
	// leaseFor is how long a send's lease holds without renewal: a sender
	// that dies is noticed this long after its last renewal at most.
	leaseFor = session.MaxLease
	// renewEvery is how often a live send renews its lease.
	renewEvery = leaseFor / 3
)

// replayStore is what the replayer needs of the store: the replay state
// machine, each step one atomic, durable store call.
type replayStore interface {
	Lease(ctx context.Context, id, owner, token string, lease time.Duration) (session.Stored, io.ReadCloser, session.Replay, error)
	Resend(ctx context.Context, id, owner, token string, lease time.Duration) (session.Stored, io.ReadCloser, session.Replay, error)
	Renew(ctx context.Context, id, token string, lease time.Duration) error
	MarkSent(ctx context.Context, id, token string) error
	Unlease(ctx context.Context, id, token string) error
	Answer(ctx context.Context, id, token string, res session.Result, body io.Reader, limit int64) (int64, error)
	Settle(ctx context.Context, id, token, outcome string) error
	TakeAnswer(ctx context.Context, id, owner string) (session.Result, io.ReadCloser, error)
	ReplayOf(ctx context.Context, id, owner string) (session.Stored, session.Replay, error)
	ownerStore
}

// upstreams finds the route of a host and path, and the proxy that serves
// it; ok is false when no route matches.
type upstreams interface {
	routeFor(host, path string) (rt *Route, proxy *httputil.ReverseProxy, ok bool)
}

// replayer is the exactly-once state machine after a login. One send reads
// as its states: take the stash as a lease (pending -> leased), keep the
// lease renewed while alive, mark it sent before the first byte (-> sent),
// send it through the route's proxy (the same ReverseProxy as live
// requests), keep the answer (-> answered) or settle. Each transition is
// one atomic, durable store call; what is not written is not done.
type replayer struct {
	store    replayStore
	routes   upstreams
	pending  *pendingList
	cookies  *session.Cookies
	pages    *pages
	metrics  *metrics
	log      *slog.Logger
	now      func() time.Time
	stashTTL time.Duration // how long a submission waits for its login
	maxKept  int64         // the largest answer kept to be shown at the submitted URL
}

// takeFunc takes a stash for one send: session.Store.Lease (pending, or a
// lapsed lease) or Resend (ambiguous, the person asked).
type takeFunc func(ctx context.Context, id, owner, token string, lease time.Duration) (session.Stored, io.ReadCloser, session.Replay, error)

// replay sends the stash id of the person's browser once, after a login or
// at the person's next step after a crash (a lapsed lease is taken again).
func (p *replayer) replay(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, id, rd string) error {
	return p.send(w, r, ck, who, id, rd, p.store.Lease)
}

// resend sends an ambiguous stash again, with its Idempotency-Key: the
// person chose "Send it again", or the route's app honours the key.
func (p *replayer) resend(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, id, rd string) error {
	p.metrics.replays.WithLabelValues("resent").Inc()
	return p.send(w, r, ck, who, id, rd, p.store.Resend)
}

// send is one send of a stash, as the list of its states.
func (p *replayer) send(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, id, rd string, take takeFunc) error {
	// Once leased, the stash is sent whole or not at all, whatever the
	// browser does meanwhile: the store's reader and the upstream request
	// run on a context the browser cannot cancel, bounded by replayTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), replayTimeout)
	defer cancel()
	token := session.NewID()

	// pending -> leased: of two tabs, a double click or two replicas,
	// exactly one gets it.
	var (
		stored session.Stored
		body   io.ReadCloser
		rep    session.Replay
		owner  string
	)
	err := asOwner(ctx, p.store, ck, func(o string) error {
		var err error
		stored, body, rep, err = take(ctx, id, o, token, leaseFor)
		owner = o
		return err
	})
	if err != nil {
		return p.notLeased(w, r, ck, who, id, rd, rep, err)
	}
	defer body.Close()
	// While this send is alive its lease is renewed; if this process dies
	// the lease lapses within leaseFor and the person's next step takes it.
	stop := p.hold(ctx, id, token)
	defer stop()

	s := &send{p: p, id: id, token: token, owner: owner, stop: stop, w: w, r: r, ck: ck, who: who, stored: stored}
	proxy, err := p.admit(ctx, w, s)
	if err != nil {
		return err
	}
	// leased -> sent, durably, before the first byte may reach the app.
	if err := p.store.MarkSent(ctx, id, token); err != nil {
		p.unlease(ctx, s)
		_ = saveCookie(p.cookies, w, r, ck)
		return notSent(err, id, rd)
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

// hold renews the lease of token every renewEvery until the returned stop
// is called (when the send ends) or the lease is lost.
func (p *replayer) hold(ctx context.Context, id, token string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(renewEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := p.store.Renew(ctx, id, token, leaseFor)
			switch {
			case err == nil:
			case errors.Is(err, session.ErrLeaseLost), errors.Is(err, session.ErrState), errors.Is(err, session.ErrNotFound):
				return // answered, settled, or taken over: nothing left to hold
			case ctx.Err() == nil:
				p.log.LogAttrs(ctx, slog.LevelWarn, "renewing a replay's lease failed", slog.String("error", err.Error()))
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// admit checks that a leased stash goes to a route that still exists and
// lets this person pass, and returns that route's proxy. What may not be
// sent is settled, unsent.
func (p *replayer) admit(ctx context.Context, w http.ResponseWriter, s *send) (*httputil.ReverseProxy, error) {
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
		p.settle(ctx, s, "no_route")
		return nil, &httpError{Status: http.StatusNotFound, Code: "no_route", Title: "Not found",
			Message: "The application this submission was for is no longer configured. It was not sent."}
	}
	if !rt.Policy.Allows(s.who.identity()) {
		p.settle(ctx, s, "forbidden")
		if err := saveCookie(p.cookies, w, s.r, s.ck); err != nil {
			return nil, err
		}
		e := forbidden()
		e.Message += " Your pending submission was discarded and not sent."
		return nil, e
	}
	s.target, s.upstream = target, rt.Upstream
	return proxy, nil
}

// notAnswered answers a send whose upstream gave no answer. If nothing
// was written upstream the stash goes back to pending, untouched, and the
// person may retry. Otherwise it may have reached the app: it stays sent,
// its lease is let go, and the person is asked whether to send it again.
func (p *replayer) notAnswered(ctx context.Context, w http.ResponseWriter, s *send, rd string) error {
	err := s.sendErr
	_ = saveCookie(p.cookies, w, s.r, s.ck)
	if !s.wrote.Load() {
		if uerr := p.store.Unlease(ctx, s.id, s.token); uerr != nil {
			// The lease lapses on its own; the next step takes it again.
			p.log.LogAttrs(ctx, slog.LevelWarn, "giving back an unsent replay failed", slog.String("error", uerr.Error()))
		}
		p.metrics.replays.WithLabelValues("refused_kept").Inc()
		p.log.LogAttrs(ctx, slog.LevelWarn, "replay refused by upstream, stash kept", slog.String("error", err.Error()))
		return &httpError{Status: http.StatusBadGateway, Code: "upstream_unavailable",
			Title: "The application is not answering", RetryStash: s.id, BackURL: rd, Cause: err,
			Message: "You are logged in, but the application could not be reached. Your submission is kept and was not sent; try again in a moment."}
	}
	p.metrics.replays.WithLabelValues("failed").Inc()
	p.log.LogAttrs(ctx, slog.LevelWarn, "replay sent, no answer", slog.String("error", err.Error()))
	// Let the lease go at once: the submission is now ambiguous, and the
	// page offers to send it again or discard it.
	s.stop()
	p.release(ctx, s.id, s.token)
	rep := session.Replay{State: session.StateSent, SentAt: p.now()}
	p.pages.ambiguous(w, s.r, http.StatusBadGateway, s.ck, s.id, rd, s.stored, rep,
		"Your submission was sent to the application, but no answer came back, so the gateway cannot tell whether it arrived.")
	return nil
}

// release lets a send's lease lapse now (Renew to the shortest lease the
// store takes, then stop renewing), so the next step sees it as lapsed.
func (p *replayer) release(ctx context.Context, id, token string) {
	if err := p.store.Renew(ctx, id, token, time.Nanosecond); err != nil && !errors.Is(err, session.ErrState) {
		p.log.LogAttrs(ctx, slog.LevelWarn, "letting a replay's lease go failed", slog.String("error", err.Error()))
	}
}

// unlease gives a stash back after a send that wrote nothing.
func (p *replayer) unlease(ctx context.Context, s *send) {
	if err := p.store.Unlease(ctx, s.id, s.token); err != nil && !errors.Is(err, session.ErrState) {
		p.log.LogAttrs(ctx, slog.LevelWarn, "giving back an unsent replay failed", slog.String("error", err.Error()))
	}
}

// settle ends a send for good with outcome, and frees the browser's place.
func (p *replayer) settle(ctx context.Context, s *send, outcome string) {
	ctx = context.WithoutCancel(ctx)
	if err := p.store.Settle(ctx, s.id, s.token, outcome); err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "settling a replay failed", slog.String("outcome", outcome), slog.String("error", err.Error()))
	}
	p.pending.release(ctx, s.stored.Owner, s.id)
	if outcome == "no_route" || outcome == "forbidden" {
		p.metrics.replays.WithLabelValues(outcome).Inc()
	}
}

// consumed records that the upstream answered a send.
func (p *replayer) consumed(ctx context.Context, s *send, status int) {
	p.pending.release(ctx, s.stored.Owner, s.id)
	p.metrics.replays.WithLabelValues("replayed").Inc()
	p.log.LogAttrs(ctx, slog.LevelInfo, "submission replayed", slog.String("user", s.who.rec.User),
		slog.String("method", s.stored.Method), slog.String("path", s.target.Path), slog.Int("status", status))
}

// notSent is the answer when MarkSent could not be written: nothing was
// sent, the submission is kept.
func notSent(err error, id, rd string) error {
	he := storeError(err)
	if he.Status == statusClientClosed {
		return he
	}
	he.RetryStash, he.BackURL = id, rd
	he.Message = "The gateway could not record the sending of your submission, so it did not send it. It is kept; try again in a moment."
	return he
}

// send is one send of a stash on its way through a route's proxy. The
// proxy's Rewrite adds what marks it as a replay; its ModifyResponse hands
// the answer to the replayer (answer.go); its ErrorHandler records a
// failure here for send to answer.
type send struct {
	p        *replayer
	id       string
	token    string              // this send's lease
	owner    string              // the browser id the stash is bound to
	stop     func()              // stops renewing the lease
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
// answered by send.
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
