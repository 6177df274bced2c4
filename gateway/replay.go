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
	"sync/atomic"
	"time"

	"github.com/postern/postern/session"
)

// replayTimeout bounds one replay, from taking the stash to the end of the
// upstream's answer: a hung upstream cannot hold a taken stash forever.
const replayTimeout = 5 * time.Minute

// replay consumes the stash once and sends it to the upstream, then
// delivers the answer. Taking the stash is one atomic step in the store,
// done before anything is sent: of two tabs, a double click or two replicas,
// exactly one gets it. It is put back only when nothing reached the upstream.
func (g *Gateway) replay(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, id, rd string) {
	// Once taken, the stash is sent whole or not at all, whatever the
	// browser does meanwhile: the store's reader and the upstream request
	// run on a context the browser cannot cancel, bounded by replayTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), replayTimeout)
	defer cancel()
	stored, body, err := g.store.TakeStash(ctx, id)
	if errors.Is(err, session.ErrNotFound) {
		if state, serr := g.store.ReplayStateOf(ctx, id); serr == nil && state != session.NotReplayed {
			err = session.ErrTaken
		}
	}
	switch {
	case errors.Is(err, session.ErrTaken):
		// Another completion (a double click, another tab) is replaying it
		// or has; its answer will wait at the URL under the same id.
		g.metrics.replays.WithLabelValues("already_taken").Inc()
		_ = ck.AddResult(session.ResultRef{URL: rd, ID: id})
		if err := g.saveCookie(w, r, ck); err != nil {
			g.fail(w, r, err)
			return
		}
		seeOther(w, rd)
		return
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		g.metrics.replays.WithLabelValues("expired").Inc()
		if err := g.saveCookie(w, r, ck); err != nil {
			g.fail(w, r, err)
			return
		}
		g.fail(w, r, &httpError{Status: http.StatusGone, Code: "stash_expired",
			Title: "Your submission has expired", BackURL: rd,
			Message: "You are logged in now, but the submission made before the login was kept for " +
				formatDuration(g.opts.StashTTL) + " only, or is unknown. It was not sent. Please go back and submit it again."})
		return
	case err != nil:
		g.fail(w, r, storeError(err))
		return
	}
	defer body.Close()

	if stored.Owner != ck.BrowserID {
		// Never replay another browser's submission.
		body.Close()
		if err := g.store.RestoreStash(ctx, id); err != nil {
			g.log.LogAttrs(ctx, slog.LevelError, "restoring a foreign stash failed", slog.String("error", err.Error()))
		}
		g.fail(w, r, &httpError{Status: http.StatusForbidden, Code: "stash_foreign", Title: "Not your submission",
			Message: "This pending submission was made in another browser, so it will not be sent from this one."})
		return
	}
	target, err := url.ParseRequestURI(stored.URL)
	ri := -1
	if err == nil {
		ri = g.route(stored.Host, target.Path)
	}
	if ri < 0 {
		g.discard(ctx, id, "no_route")
		g.releasePending(ctx, stored.Owner, id)
		g.fail(w, r, &httpError{Status: http.StatusNotFound, Code: "no_route", Title: "Not found",
			Message: "The application this submission was for is no longer configured. It was not sent."})
		return
	}
	if !g.opts.Routes[ri].Policy.Allows(who.identity()) {
		g.discard(ctx, id, "forbidden")
		g.releasePending(ctx, stored.Owner, id)
		if err := g.saveCookie(w, r, ck); err != nil {
			g.fail(w, r, err)
			return
		}
		e := forbidden()
		e.Message += " Your pending submission was discarded and not sent."
		g.fail(w, r, e)
		return
	}

	out, wrote := g.replayRequest(ctx, r, who, stored, target, g.opts.Routes[ri].Upstream, body)
	resp, err := g.transport.RoundTrip(out)
	if err != nil {
		body.Close()
		if !wrote.Load() {
			// Nothing reached the upstream: the stash goes back, untouched,
			// and the person may retry.
			rerr := g.store.RestoreStash(ctx, id)
			_ = g.saveCookie(w, r, ck)
			if rerr == nil {
				g.metrics.replays.WithLabelValues("refused_kept").Inc()
				g.log.LogAttrs(ctx, slog.LevelWarn, "replay refused by upstream, stash kept", slog.String("error", err.Error()))
				g.fail(w, r, &httpError{Status: http.StatusBadGateway, Code: "upstream_unavailable",
					Title: "The application is not answering", RetryStash: id, BackURL: rd, Cause: err,
					Message: "You are logged in, but the application could not be reached. Your submission is kept and was not sent; try again in a moment."})
				return
			}
			// Not sent, and it could not be put back either: say exactly that.
			g.metrics.replays.WithLabelValues("refused_lost").Inc()
			g.releasePending(ctx, stored.Owner, id)
			g.fail(w, r, &httpError{Status: http.StatusBadGateway, Code: "upstream_unavailable",
				Title: "The application is not answering", BackURL: rd, Cause: errors.Join(err, rerr),
				Message: "You are logged in, but the application could not be reached, and your submission could not be kept for a retry. It was not sent: please go back and submit it again."})
			return
		}
		g.discard(ctx, id, "failed")
		g.settle(ctx, id)
		g.releasePending(ctx, stored.Owner, id)
		_ = g.saveCookie(w, r, ck)
		g.fail(w, r, &httpError{Status: http.StatusBadGateway, Code: "upstream_failed",
			Title: "The application did not answer", BackURL: rd, Cause: err,
			Message: "Your submission was sent to the application, but no answer came back. It will not be sent again; check in the application whether it arrived."})
		return
	}
	defer resp.Body.Close()
	g.discard(ctx, id, "")
	g.releasePending(ctx, stored.Owner, id)
	g.metrics.replays.WithLabelValues("replayed").Inc()
	g.log.LogAttrs(ctx, slog.LevelInfo, "submission replayed", slog.String("user", who.rec.User),
		slog.String("method", stored.Method), slog.String("path", target.Path), slog.Int("status", resp.StatusCode))
	g.deliver(w, r, ck, resp, stored, g.opts.Routes[ri].Upstream, id)
}

// replayRequest builds the request sent upstream for a stash: the stored
// method, URL, headers and body, the cookies the browser sends now (minus
// the gateway's), the identity headers and X-Postern-Replayed. wrote
// reports whether any of it may have reached the upstream.
func (g *Gateway) replayRequest(ctx context.Context, r *http.Request, who *principal, stored session.Stored, target *url.URL, upstream *url.URL, body io.Reader) (*http.Request, *atomic.Bool) {
	wrote := new(atomic.Bool)
	trace := &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { wrote.Store(true) },
	}
	ctx = httptrace.WithClientTrace(ctx, trace)
	in := &http.Request{Method: stored.Method, URL: target, Host: stored.Host, Header: stored.Header.Clone(),
		RemoteAddr: r.RemoteAddr, TLS: r.TLS, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if in.Header == nil {
		in.Header = make(http.Header)
	}
	// Cookies and the forwarding chain are this request's (the login),
	// which comes from the same browser as the submission.
	for _, k := range []string{"Cookie", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := r.Header.Values(k); len(v) > 0 {
			in.Header[k] = v
		}
	}
	out := in.Clone(ctx)
	pr := &httputil.ProxyRequest{In: in, Out: out}
	pr.SetURL(upstream)
	g.setForwarded(pr)
	dropOwnCookie(out.Header, g.cookies.Name())
	g.setIdentity(out.Header, who, upstream)
	out.Header.Set("X-Postern-Replayed", "true")
	out.Body = io.NopCloser(body)
	out.ContentLength = stored.Size
	if stored.Size == 0 {
		out.Body = http.NoBody
	}
	out.GetBody = nil // never re-sent by the transport
	return out, wrote
}

// settle records that nothing more of a replay's answer will be kept, so a
// page waiting for it stops waiting.
func (g *Gateway) settle(ctx context.Context, id string) {
	if err := g.store.MarkReplayed(context.WithoutCancel(ctx), id, session.Settled, g.opts.StashTTL); err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "marking a replay settled failed", slog.String("error", err.Error()))
	}
}

// discard deletes a consumed stash and, for a replayed one (why == ""),
// records that it was replayed. A failure only leaves it taken, which can
// never be replayed, and expires with its TTL.
func (g *Gateway) discard(ctx context.Context, id, why string) {
	if why == "" {
		if err := g.store.MarkReplayed(context.WithoutCancel(ctx), id, session.Replayed, g.opts.StashTTL); err != nil {
			g.log.LogAttrs(ctx, slog.LevelWarn, "marking a stash replayed failed", slog.String("error", err.Error()))
		}
	}
	if err := g.store.DeleteStash(context.WithoutCancel(ctx), id); err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "deleting a consumed stash failed", slog.String("error", err.Error()))
	}
	if why != "" {
		g.metrics.replays.WithLabelValues(why).Inc()
	}
}
