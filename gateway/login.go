package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/session"
)

// loginMethods are the ways a person can log in.
type loginMethods struct {
	passwords PasswordChecker
	oidc      OIDCLogin
	limiter   LoginLimiter
}

// maxFormBytes bounds the gateway's own forms (login, logout, resume).
const maxFormBytes = 64 << 10

// login serves /.postern/login for every method. A request carrying
// ?stash= with another method than GET is the browser following the 307
// with the original submission (its body is not read: it was stashed
// already); it is sent on (303) to the login page as a GET, so that the
// browser's history holds GETs only: Back and Refresh never offer to send
// a form again. A POST without it is the login form.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if r.Method == http.MethodPost && !q.Has("stash") {
		return g.loginSubmit(w, r)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !q.Has("stash") {
		w.Header().Set("Allow", "GET, HEAD, POST")
		return &httpError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Title: "Method not allowed", Message: "The login page accepts GET and POST."}
	}
	ck := cookieFrom(r.Context())
	stash, rd := q.Get("stash"), sameOriginPath(q.Get("rd"), g.opts.PublicURL, "/")
	if !validID(stash) {
		stash = ""
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// The browser re-sends the original body with the 307. It was
		// stashed already; read and drop it (within the stash limit), so the
		// browser is not cut off mid-upload and follows the 303.
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, g.opts.StashMaxBody+1))
		}
		if err := g.saveCookie(w, r, ck); err != nil {
			return err
		}
		to := loginURL(stash, rd)
		if q.Get("sso") == "1" {
			to += map[bool]string{true: "&", false: "?"}[strings.Contains(to, "?")] + "sso=1"
		}
		seeOther(w, to)
		return nil
	}
	who, err := g.identify(r.Context(), r, ck)
	if err != nil {
		return err
	}
	if err := g.saveCookie(w, r, ck); err != nil {
		return err
	}
	if who != nil {
		if stash == "" {
			seeOther(w, rd)
			return nil
		}
		if !g.replayer.waiting(r.Context(), ck, stash) {
			// Sent already, or being sent (Back to this page after the
			// result): on to the page it was submitted to, as a plain GET,
			// where its answer or its state is shown.
			seeOther(w, rd)
			return nil
		}
		// Logged in already (another tab did it): the person confirms that
		// this tab's pending submission should now be sent.
		g.pages.render(w, http.StatusOK, "continue", pageData{CSRF: ck.CSRF, Stash: stash, Return: rd, User: who.rec.User,
			Pending: g.pendingText(r.Context(), ck, stash)})
		return nil
	}
	if g.logins.passwords == nil || (q.Get("sso") == "1" && g.logins.oidc != nil) {
		return g.startOIDC(w, r, ck, stash, rd)
	}
	g.pages.render(w, http.StatusOK, "login", g.loginPage(r.Context(), ck, stash, rd))
	return nil
}

// loginPage is the data of the login page.
func (g *Gateway) loginPage(ctx context.Context, ck *session.Cookie, stash, rd string) pageData {
	d := pageData{CSRF: ck.CSRF, Stash: stash, Return: rd, Pending: g.pendingText(ctx, ck, stash)}
	if g.logins.oidc != nil {
		d.SSO = loginURL(stash, rd) + map[bool]string{true: "&", false: "?"}[strings.Contains(loginURL(stash, rd), "?")] + "sso=1"
	}
	return d
}

// loginSubmit checks the login form and, on success, completes the login:
// replays the pending submission once, or returns to where the person was.
func (g *Gateway) loginSubmit(w http.ResponseWriter, r *http.Request) error {
	ck := cookieFrom(r.Context())
	form, err := g.parseForm(w, r, ck)
	if err != nil {
		return err
	}
	if g.logins.passwords == nil {
		return g.startOIDC(w, r, ck, form.stash, form.rd)
	}
	data := g.loginPage(r.Context(), ck, form.stash, form.rd)
	data.Username = r.PostForm.Get("username")
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	addr := g.clientAddr(r)
	attempt, err := g.beginLogin(r, user, addr)
	if err != nil {
		return err
	}
	if !attempt.Allowed {
		g.audit(r.Context(), "login", "rate_limited", slog.String("method", "local"), slog.String("user", user), slog.String("addr", addr))
		w.Header().Set("Retry-After", retryAfter(attempt.Wait))
		data.Error = "Too many failed attempts. Please wait " + formatDuration(attempt.Wait) + " and try again."
		g.pages.render(w, http.StatusTooManyRequests, "login", data)
		return nil
	}
	id, err := g.logins.passwords.Check(user, pass)
	if err != nil {
		// The attempt stays counted as a failure.
		g.metrics.logins.WithLabelValues("local", "failed").Inc()
		g.audit(r.Context(), "login", "failed", slog.String("method", "local"), slog.String("user", user), slog.String("addr", addr))
		data.Error = "Wrong username or password."
		if !errors.Is(err, auth.ErrBadCredentials) {
			data.Error = "The login could not be checked. Please try again."
		}
		g.pages.render(w, http.StatusUnauthorized, "login", data)
		return nil
	}
	if err := attempt.Succeeded(r.Context()); err != nil {
		g.log.LogAttrs(r.Context(), slog.LevelWarn, "login limit: taking back a successful attempt failed", slog.String("error", err.Error()))
	}
	g.metrics.logins.WithLabelValues("local", "ok").Inc()
	who, err := g.startSession(r, ck, id, "local", oidc.Tokens{})
	if err != nil {
		return err
	}
	g.audit(r.Context(), "login", "ok", slog.String("method", "local"), slog.String("user", id.User), slog.String("addr", addr))
	return g.complete(w, r, ck, who, form.stash, form.rd)
}

// startSession creates the server-side session for id and points the cookie
// at it, under a new session id (no fixation) and a new browser id
// (rotateBrowser: a planted cookie gains nothing). The CSRF token stays: it is
// bound to this browser's cookie, and a login form sent twice (a double
// click) must still be accepted the second time, to lead to the result.
func (g *Gateway) startSession(r *http.Request, ck *session.Cookie, id auth.Identity, method string, tokens oidc.Tokens) (*principal, error) {
	now := g.now()
	rec := session.Record{User: id.User, Email: id.Email, Groups: id.Groups, Subject: id.Subject,
		Method: method, LoginAt: now, Expires: now.Add(g.opts.SessionTTL),
		AccessToken: tokens.AccessToken, RefreshToken: tokens.RefreshToken, IDToken: tokens.IDToken, TokenExpiry: tokens.Expiry}
	if err := g.rotateBrowser(r.Context(), ck, id, method); err != nil {
		return nil, err
	}
	sid := session.NewID()
	if err := g.store.SaveSession(r.Context(), sid, rec, g.opts.SessionTTL); err != nil {
		return nil, storeError(err)
	}
	if ck.SID != "" {
		_ = g.store.DeleteSession(r.Context(), ck.SID)
	}
	ck.SID = sid
	return &principal{sid: sid, rec: rec}, nil
}

// complete finishes a login: the pending submission is replayed once, or
// the browser returns to where it was.
func (g *Gateway) complete(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, stash, rd string) error {
	if stash == "" {
		if err := g.saveCookie(w, r, ck); err != nil {
			return err
		}
		seeOther(w, rd)
		return nil
	}
	return g.replayer.replay(w, r, ck, who, stash, rd)
}

// resume replays a stash for a person who is logged in already: the
// "continue" button of another tab, or the retry after an upstream refused.
func (g *Gateway) resume(w http.ResponseWriter, r *http.Request) error {
	ck := cookieFrom(r.Context())
	form, err := g.parseForm(w, r, ck)
	if err != nil {
		return err
	}
	who, err := g.identify(r.Context(), r, ck)
	if err != nil {
		return err
	}
	if who == nil {
		http.Redirect(w, r, loginURL(form.stash, form.rd), http.StatusSeeOther)
		return nil
	}
	return g.complete(w, r, ck, who, form.stash, form.rd)
}

// logout ends the session: GET asks, POST does it.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) error {
	ck := cookieFrom(r.Context())
	if r.Method != http.MethodPost {
		if r.URL.Query().Has("done") {
			g.pages.render(w, http.StatusOK, "loggedout", pageData{})
			return nil
		}
		if err := g.saveCookie(w, r, ck); err != nil {
			return err
		}
		data := pageData{CSRF: ck.CSRF}
		if who, err := g.identify(r.Context(), r, ck); err == nil && who != nil {
			data.LoggedIn, data.User = true, who.rec.User
		}
		g.pages.render(w, http.StatusOK, "logout", data)
		return nil
	}
	if _, err := g.parseForm(w, r, ck); err != nil {
		return err
	}
	var idToken string
	user := "-"
	if ck.SID != "" {
		if rec, err := g.store.GetSession(r.Context(), ck.SID); err == nil {
			idToken, user = rec.IDToken, rec.User
		}
		if err := g.store.DeleteSession(r.Context(), ck.SID); err != nil {
			return storeError(err)
		}
	}
	ck.SID, ck.CSRF, ck.Results = "", session.NewID(), nil
	if err := g.saveCookie(w, r, ck); err != nil {
		return err
	}
	g.audit(r.Context(), "logout", "ok", slog.String("user", user))
	done := g.opts.PublicURL.JoinPath(prefix, "logout").String() + "?done"
	if g.logins.oidc != nil && idToken != "" {
		// RP-initiated logout: the provider ends its session too.
		if to, ok := g.logins.oidc.EndSessionURL(idToken, done); ok {
			http.Redirect(w, r, to, http.StatusSeeOther)
			return nil
		}
	}
	http.Redirect(w, r, done, http.StatusSeeOther)
	return nil
}

type gatewayForm struct {
	stash string
	rd    string
}

// parseForm reads one of the gateway's own forms and checks its CSRF token
// against the cookie's.
func (g *Gateway) parseForm(w http.ResponseWriter, r *http.Request, ck *session.Cookie) (gatewayForm, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return gatewayForm{}, &httpError{Status: http.StatusBadRequest, Code: "bad_form",
			Title: "Form not understood", Message: "The form could not be read. Please go back and try again.", Cause: err}
	}
	f := gatewayForm{stash: r.PostForm.Get("stash"), rd: sameOriginPath(r.PostForm.Get("rd"), g.opts.PublicURL, "/")}
	if !validID(f.stash) {
		f.stash = ""
	}
	token := r.PostForm.Get("csrf")
	if ck.IsNew || token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(ck.CSRF)) != 1 {
		// Said in the log, for the operator: a cookie that never comes back
		// (a Secure cookie over plain http, a wrong --public-url) looks like this.
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "gateway form refused: CSRF token missing or not this browser's",
			slog.String("path", r.URL.Path), slog.Bool("cookie_received", !ck.IsNew),
			slog.Bool("cookie_secure", g.opts.PublicURL.Scheme == "https"), slog.Bool("request_tls", r.TLS != nil))
		// Keep whatever was stashed: the person only has to log in again.
		return f, &httpError{Status: http.StatusForbidden, Code: "csrf",
			Title: "This form has expired", Login: loginURL(f.stash, f.rd),
			Message: "The form was too old or came from another site. Nothing was lost: please log in again."}
	}
	return f, nil
}

// saveCookie writes the session cookie; a failure here is the gateway's.
func (g *Gateway) saveCookie(w http.ResponseWriter, r *http.Request, ck *session.Cookie) error {
	return saveCookie(g.cookies, w, r, ck)
}

// saveCookie writes ck with cookies; a failure here is the gateway's.
func saveCookie(cookies *session.Cookies, w http.ResponseWriter, r *http.Request, ck *session.Cookie) error {
	if err := cookies.Save(w, r, ck); err != nil {
		return &httpError{Status: http.StatusInternalServerError, Code: "internal", Title: "Something went wrong",
			Message: "The gateway could not write its cookie.", Cause: err}
	}
	return nil
}

// validID reports whether s looks like an id made by session.NewID, so that
// nothing else is ever used as a store key.
func validID(s string) bool {
	if len(s) < 22 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func retryAfter(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// pendingText says what this browser's kept submission stash is, for the
// login page: "POST /checkout". It is empty when unknown (or another
// browser's), and the page then says only that a submission is kept.
func (g *Gateway) pendingText(ctx context.Context, ck *session.Cookie, stash string) string {
	if stash == "" {
		return ""
	}
	sum, err := g.store.StashSummaryOf(ctx, stash)
	if err != nil {
		return ""
	}
	if owned, err := g.owns(ctx, ck, sum.Owner); err != nil || !owned {
		return ""
	}
	return sum.Method + " " + sum.Path
}
