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

	"github.com/postern/postern/session"
)

// answer is the send's last steps, run by the proxy's ModifyResponse once
// the upstream answered. A redirect passes through (always as 303, so the
// login form itself is never re-sent) and the replay settles. Any other
// answer is kept (sent -> answered) and the browser goes (303) to the URL
// it submitted to, where the result keeper shows it once: relative links
// resolve there, and a refresh is a plain GET that submits nothing. resp
// becomes what the browser gets.
func (p *replayer) answer(s *send, resp *http.Response) error {
	ctx := context.WithoutCancel(resp.Request.Context())
	p.consumed(ctx, s, resp.StatusCode)
	if loc := resp.Header.Get("Location"); loc != "" && isRedirect(resp.StatusCode) {
		// Only what a redirect needs: where to, and the upstream's cookies
		// (a "saved" flash message, say).
		h := make(http.Header)
		h.Set("Location", upstreamLocation(loc, s.stored, s.upstream))
		if c := resp.Header.Values("Set-Cookie"); len(c) > 0 {
			h["Set-Cookie"] = c
		}
		h.Set("Cache-Control", "no-store")
		resp.Body.Close()
		// Kept too (sent -> answered), for a second completion of the same
		// login (a double click) that follows it to the submitted URL; this
		// browser goes on at once and needs no pointer to it.
		res := session.Result{Status: http.StatusSeeOther, Header: h.Clone(), Owner: s.ck.BrowserID, URL: s.stored.URL, Size: 0}
		if _, err := p.store.Answer(ctx, s.id, s.token, res, http.NoBody, 0); err != nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "keeping a replay's redirect failed", slog.String("error", err.Error()))
			p.settle(ctx, s, "redirected")
		}
		dropRef(s.ck, s.id)
		return s.reply(resp, http.StatusSeeOther, h, http.NoBody)
	}
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusResetContent {
		// Nothing to show: the person lands on the page they submitted to.
		p.settle(ctx, s, "no_content")
		dropRef(s.ck, s.id)
		resp.Body.Close()
		return s.reply(resp, http.StatusSeeOther, http.Header{"Location": {s.stored.URL}}, http.NoBody)
	}
	res := session.Result{Status: resp.StatusCode, Header: make(http.Header), Owner: s.ck.BrowserID, URL: s.stored.URL, Size: -1}
	copyHeaders(res.Header, resp.Header)
	limit := p.maxKept
	if resp.ContentLength > limit {
		// Larger than the gateway keeps: show it here and now instead.
		p.settle(ctx, s, "streamed")
		dropRef(s.ck, s.id)
		res.Header.Set("Cache-Control", "no-store")
		return s.reply(resp, res.Status, res.Header, resp.Body)
	}
	// sent -> answered: the answer is kept, sealed, at most limit bytes.
	if _, err := p.store.Answer(ctx, s.id, s.token, res, io.LimitReader(resp.Body, limit), limit); err != nil {
		// The answer could not be kept; the person sees what the gateway
		// can say rather than nothing.
		p.log.LogAttrs(ctx, slog.LevelError, "keeping the replay's answer failed", slog.String("error", err.Error()))
		p.settle(ctx, s, "unshown")
		dropRef(s.ck, s.id)
		_ = saveCookie(p.cookies, s.w, s.r, s.ck)
		return &httpError{Status: http.StatusBadGateway, Code: "result_lost", Title: "Your submission was sent",
			BackURL: s.stored.URL, Cause: err,
			Message: "Your submission reached the application once, but its answer could not be shown. It will not be sent again."}
	}
	var one [1]byte
	if n, _ := io.ReadFull(resp.Body, one[:]); n > 0 {
		// Larger than the gateway keeps: show it here and now instead,
		// streaming what was kept and the rest.
		return p.streamOversized(ctx, s, resp, one[:n])
	}
	keepRef(s.ck, s.stored.URL, s.id)
	if !hasRef(s.ck, s.id) {
		// A URL too long for the cookie: show the answer here instead.
		return p.streamOversized(ctx, s, resp, nil)
	}
	resp.Body.Close()
	return s.reply(resp, http.StatusSeeOther, http.Header{"Location": {s.stored.URL}}, http.NoBody)
}

// streamOversized sends a kept answer (plus what is left of it upstream)
// straight to the browser, at the login URL.
func (p *replayer) streamOversized(ctx context.Context, s *send, resp *http.Response, more []byte) error {
	res, kept, err := p.store.TakeAnswer(ctx, s.id, s.owner)
	dropRef(s.ck, s.id)
	if err != nil {
		return storeError(err)
	}
	rest := resp.Body
	body := &keptBody{Reader: io.MultiReader(kept, bytes.NewReader(more), rest), close: func() {
		kept.Close()
		rest.Close()
	}}
	h := res.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Set("Cache-Control", "no-store")
	if err := s.reply(resp, res.Status, h, body); err != nil {
		body.Close()
		return err
	}
	return nil
}

// reply turns the upstream's answer into the one the browser gets, with
// the gateway's cookie added after the upstream's, never in place of them.
// The proxy writes it.
func (s *send) reply(resp *http.Response, status int, h http.Header, body io.ReadCloser) error {
	if err := saveCookie(s.p.cookies, headerWriter(h), s.r, s.ck); err != nil {
		return err
	}
	resp.StatusCode, resp.Status = status, ""
	resp.Header, resp.Trailer, resp.Body = h, nil, body
	resp.ContentLength = -1
	if body == http.NoBody {
		resp.ContentLength = 0
	}
	return nil
}

// keptBody reads a kept answer and its rest; Close frees both.
type keptBody struct {
	io.Reader
	close func()
	done  bool
}

func (b *keptBody) Close() error {
	if !b.done {
		b.done = true
		b.close()
	}
	return nil
}

// headerWriter is a ResponseWriter that only has a header: the gateway's
// cookie is written into an answer the proxy sends.
type headerWriter http.Header

func (h headerWriter) Header() http.Header { return http.Header(h) }

func (headerWriter) Write([]byte) (int, error) { return 0, errors.New("headerWriter has no body") }

func (headerWriter) WriteHeader(int) {}

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
func upstreamLocation(loc string, stored session.Stored, upstream *url.URL) string {
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

// hopHeaders are connection-specific and never copied between hops.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// copyHeaders copies an answer's end-to-end headers: without the
// hop-by-hop ones and Content-Length (a kept answer is written anew).
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
