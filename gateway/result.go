package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/postern/postern/session"
)

const (
	// resultTTL is how long a replay's answer waits to be shown.
	resultTTL = 5 * time.Minute
	// resultWait bounds how long the page at the original URL waits for an
	// answer that another completion (a double click) is still fetching.
	resultWait = 30 * time.Second
)

// hopHeaders are connection-specific and never copied between hops.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// deliver sends the upstream's answer to a replay to the person. A redirect
// passes through (always as 303, so the login form itself is never re-sent).
// Any other answer is kept and the browser goes (303) to the URL it
// submitted to, where the answer is shown once: relative links resolve
// there, and a refresh is a plain GET that submits nothing.
func (g *Gateway) deliver(w http.ResponseWriter, r *http.Request, ck *session.Cookie, resp *http.Response, stored session.Stored, upstream *url.URL, id string) {
	// Every way out settles the replay (g.settle) once what will be kept is
	// kept: a second completion waiting for the answer takes it only then.
	ctx := context.WithoutCancel(r.Context())
	if loc := resp.Header.Get("Location"); loc != "" && isRedirect(resp.StatusCode) {
		// Only what a redirect needs: where to, and the upstream's cookies
		// (a "saved" flash message, say).
		res := session.Result{Status: http.StatusSeeOther, Header: make(http.Header), Owner: ck.BrowserID, URL: stored.URL, Size: 0}
		res.Header.Set("Location", g.upstreamLocation(loc, stored, upstream))
		if c := resp.Header.Values("Set-Cookie"); len(c) > 0 {
			res.Header["Set-Cookie"] = c
		}
		res.Header.Set("Cache-Control", "no-store")
		// Kept too, briefly, for a second completion of the same login (a
		// double click) that waits for this answer.
		if _, err := g.store.PutResult(ctx, id, res, http.NoBody, 0, resultTTL); err != nil {
			g.log.LogAttrs(ctx, slog.LevelWarn, "keeping a replay's redirect failed", slog.String("error", err.Error()))
		}
		g.settle(ctx, id)
		for k, v := range res.Header {
			w.Header()[k] = append(w.Header()[k], v...)
		}
		// The gateway's cookie is added after the upstream's, never in
		// place of them.
		if err := g.saveCookie(w, r, ck); err != nil {
			g.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusResetContent {
		// Nothing to show: the person lands on the page they submitted to.
		g.settle(ctx, id)
		if err := g.saveCookie(w, r, ck); err != nil {
			g.fail(w, r, err)
			return
		}
		seeOther(w, stored.URL)
		return
	}
	res := session.Result{Status: resp.StatusCode, Header: make(http.Header), Owner: ck.BrowserID, URL: stored.URL, Size: -1}
	copyHeaders(res.Header, resp.Header)
	limit := g.opts.StashMaxBody
	if resp.ContentLength > limit {
		// Larger than the gateway keeps: show it here and now instead.
		g.settle(ctx, id)
		if err := g.saveCookie(w, r, ck); err != nil {
			g.fail(w, r, err)
			return
		}
		g.writeResult(w, res, resp.Body)
		return
	}
	_, err := g.store.PutResult(ctx, id, res, io.LimitReader(resp.Body, limit), limit, resultTTL)
	if err != nil {
		// The answer could not be kept; the person sees what the gateway
		// can say rather than nothing.
		g.log.LogAttrs(ctx, slog.LevelError, "keeping the replay's answer failed", slog.String("error", err.Error()))
		g.settle(ctx, id)
		_ = g.saveCookie(w, r, ck)
		g.fail(w, r, &httpError{Status: http.StatusBadGateway, Code: "result_lost", Title: "Your submission was sent",
			BackURL: stored.URL, Cause: err,
			Message: "Your submission reached the application once, but its answer could not be shown. It will not be sent again."})
		return
	}
	var one [1]byte
	if n, _ := io.ReadFull(resp.Body, one[:]); n > 0 {
		// Larger than the gateway keeps: show it here and now instead,
		// streaming what was kept and the rest.
		g.streamOversized(w, r, ck, id, one[:n], resp.Body)
		return
	}
	if ck.AddResult(session.ResultRef{URL: stored.URL, ID: id}) != nil {
		// A URL too long for the cookie: show the answer here instead.
		g.streamOversized(w, r, ck, id, nil, http.NoBody)
		return
	}
	g.settle(ctx, id)
	if err := g.saveCookie(w, r, ck); err != nil {
		g.fail(w, r, err)
		return
	}
	seeOther(w, stored.URL)
}

// seeOther answers 303 to a same-origin path exactly as given (without the
// path cleaning of http.Redirect, which would move the answer away from the
// URL it waits at).
func seeOther(w http.ResponseWriter, path string) {
	w.Header().Set("Location", path)
	w.WriteHeader(http.StatusSeeOther)
}

// upstreamLocation turns an upstream's redirect target into one for the
// browser: relative ones resolve against the submitted URL, and absolute
// ones pointing at the upstream itself become paths on the gateway (the
// upstream's own address is not the person's to see).
func (g *Gateway) upstreamLocation(loc string, stored session.Stored, upstream *url.URL) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "/"
	}
	if u.Host != "" && strings.EqualFold(u.Host, upstream.Host) {
		u.Scheme, u.Host, u.User = "", "", nil
	}
	if u.Host == "" {
		base, err := url.Parse(stored.URL)
		if err != nil {
			return "/"
		}
		u = base.ResolveReference(u)
	}
	return u.String()
}

// streamOversized sends a kept answer (plus what is left of it upstream)
// straight to the browser, at the login URL.
func (g *Gateway) streamOversized(w http.ResponseWriter, r *http.Request, ck *session.Cookie, id string, more []byte, rest io.Reader) {
	ctx := context.WithoutCancel(r.Context())
	res, kept, err := g.store.TakeResult(ctx, id)
	g.settle(ctx, id) // taken by this request: nobody else waits for it
	if err != nil {
		g.fail(w, r, storeError(err))
		return
	}
	defer func() {
		kept.Close()
		_ = g.store.DeleteResult(ctx, id)
	}()
	if err := g.saveCookie(w, r, ck); err != nil {
		g.fail(w, r, err)
		return
	}
	g.writeResult(w, res, io.MultiReader(kept, bytes.NewReader(more), rest))
}

// pendingResult takes from the cookie the kept answer waiting at this
// request's URL, if any.
func pendingResult(ck *session.Cookie, r *http.Request) (session.ResultRef, bool) {
	if r.Method != http.MethodGet || len(ck.Results) == 0 {
		return session.ResultRef{}, false
	}
	return ck.TakeResult(r.URL.RequestURI())
}

// deliverResult shows a kept answer once, at the URL it belongs to.
func (g *Gateway) deliverResult(w http.ResponseWriter, r *http.Request, ck *session.Cookie, ref session.ResultRef) {
	ctx := r.Context()
	res, body, err := g.waitResult(ctx, ref.ID)
	if err == nil {
		defer func() {
			body.Close()
			_ = g.store.DeleteResult(context.WithoutCancel(ctx), ref.ID)
		}()
		if res.Owner != ck.BrowserID {
			err = session.ErrNotFound
		}
	}
	if serr := g.saveCookie(w, r, ck); serr != nil {
		g.fail(w, r, serr)
		return
	}
	switch {
	case err == nil:
		g.metrics.results.WithLabelValues("shown").Inc()
		g.writeResult(w, res, body)
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrTaken), errors.Is(err, session.ErrCorrupt):
		g.metrics.results.WithLabelValues("gone").Inc()
		he := &httpError{Status: http.StatusGone, Code: "result_gone", Title: "Your submission was sent",
			BackURL: r.URL.RequestURI(),
			Message: "Your submission reached the application once. Its answer is no longer available here; it will not be sent again."}
		if state, serr := g.store.ReplayStateOf(ctx, ref.ID); serr == nil && state == session.NotReplayed {
			// Taken for sending, but no answer was ever recorded: the
			// sending was interrupted (a gateway restart), or is still
			// under way. Say only what is known.
			he.Code, he.Title = "result_unknown", "Your submission is not confirmed"
			he.Message = "Your submission was taken for sending, but no answer from the application was recorded: " +
				"the sending may have been interrupted. It will not be sent again; check in the application whether it arrived."
		}
		g.fail(w, r, he)
	case ctx.Err() != nil:
		// The browser went away.
	default:
		g.fail(w, r, storeError(err))
	}
}

// waitResult takes a kept answer once the replay that keeps it has
// settled. If another completion (a double click) is still replaying, it
// waits for it, within resultWait.
func (g *Gateway) waitResult(ctx context.Context, id string) (session.Result, io.ReadCloser, error) {
	deadline := time.NewTimer(resultWait)
	defer deadline.Stop()
	delay := 20 * time.Millisecond
	for {
		state, err := g.store.ReplayStateOf(ctx, id)
		if err != nil {
			return session.Result{}, nil, err
		}
		if state == session.Settled {
			return g.store.TakeResult(ctx, id)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return session.Result{}, nil, ctx.Err()
		case <-deadline.C:
			t.Stop()
			return session.Result{}, nil, session.ErrNotFound
		case <-t.C:
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// writeResult writes a kept answer; it is never cached, so Back does not
// show a stale copy and Refresh asks again with a plain GET.
func (g *Gateway) writeResult(w http.ResponseWriter, res session.Result, body io.Reader) {
	h := w.Header()
	for k, v := range res.Header {
		h[k] = append(h[k], v...)
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(res.Status)
	if _, err := io.Copy(w, body); err != nil {
		g.log.Debug("writing a kept answer stopped", slog.String("error", err.Error()))
	}
}

func copyHeaders(dst, src http.Header) {
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
	// Headers the upstream named in Connection are hop-by-hop too.
	for _, line := range src.Values("Connection") {
		for _, name := range strings.Split(line, ",") {
			if name = strings.TrimSpace(name); name != "" {
				dst.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		dst.Del(k)
	}
	dst.Del("Content-Length")
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}
