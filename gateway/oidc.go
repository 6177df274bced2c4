package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/session"
)

// OIDCLogin is the OIDC login method (auth/oidc.Provider).
type OIDCLogin interface {
	AuthCodeURL(ctx context.Context, state, nonce, verifier string) (string, error)
	Exchange(ctx context.Context, code, verifier, nonce string) (auth.Identity, oidc.Tokens, error)
	Refresh(ctx context.Context, refreshToken string) (auth.Identity, oidc.Tokens, error)
	EndSessionURL(idTokenHint, postLogoutRedirect string) (string, bool)
}

// loginStateTTL is how long a person may take at the identity provider.
const loginStateTTL = 30 * time.Minute

// providerTimeout bounds each call to the identity provider's token
// endpoint, so a hung provider cannot hold a request (or, for a refresh,
// every request of a session) forever.
const providerTimeout = 15 * time.Second

// startOIDC sends the browser to the identity provider with a 303 (never a
// 307: the login form must not be re-sent there, RFC 9700 §4.12). The state
// names what the login remembers — nonce, PKCE verifier, the pending stash —
// one per tab, so several tabs can log in at once.
//
// A login that starts on a route's own host (not the public URL's, where
// the provider sends its callback) first hops to the public URL's host
// (see handoff.go) and comes back after the callback.
func (g *Gateway) startOIDC(w http.ResponseWriter, r *http.Request, ck *session.Cookie, stash, rd string) error {
	if !g.onPublicHost(r) {
		return g.signInElsewhere(w, r, ck, stash, rd)
	}
	return g.toProvider(w, r, ck, session.LoginState{StashID: stash, ReturnURL: rd})
}

// toProvider remembers the login ls (bound to this browser) under a new
// state and sends the browser to the identity provider.
func (g *Gateway) toProvider(w http.ResponseWriter, r *http.Request, ck *session.Cookie, ls session.LoginState) error {
	stash, rd := ls.StashID, ls.ReturnURL
	state, nonce, verifier := session.NewID(), session.NewID(), oauth2.GenerateVerifier()
	ls.BrowserID, ls.Nonce, ls.Verifier, ls.Created = ck.BrowserID, nonce, verifier, g.now()
	if err := g.store.SaveLoginState(r.Context(), state, ls, loginStateTTL); err != nil {
		return storeError(err)
	}
	to, err := g.logins.oidc.AuthCodeURL(r.Context(), state, nonce, verifier)
	if err != nil {
		return providerDown(err, stash, rd)
	}
	if err := g.saveCookie(w, r, ck); err != nil {
		return err
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// callback completes an OIDC login: the state is used once, must belong to
// this browser, and the code is exchanged (PKCE) for a verified ID token.
func (g *Gateway) callback(w http.ResponseWriter, r *http.Request) (err error) {
	ck := cookieFrom(r.Context())
	if g.logins.oidc == nil {
		return &httpError{Status: http.StatusNotFound, Code: "not_found", Title: "Not found",
			Message: "OIDC login is not configured."}
	}
	q := r.URL.Query()
	state := q.Get("state")
	if !validID(state) {
		return badLogin("The login answer from the identity provider is incomplete.", "/")
	}
	ls, err := g.store.TakeLoginState(r.Context(), state)
	switch {
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		g.metrics.logins.WithLabelValues("oidc", "bad_state").Inc()
		g.audit(r.Context(), "callback", "bad_state", slog.String("method", "oidc"))
		return badLogin("This login was already completed or has expired. Please log in again.", "/")
	case err != nil:
		return storeError(err)
	}
	if owned, err := g.owns(r.Context(), ck, ls.BrowserID); err != nil {
		return err
	} else if !owned {
		g.metrics.logins.WithLabelValues("oidc", "foreign_state").Inc()
		g.audit(r.Context(), "callback", "foreign_browser", slog.String("method", "oidc"))
		return badLogin("This login was started in another browser. Please log in again here.", ls.ReturnURL)
	}
	if ls.Handoff != nil {
		// A login from a route's host: its "log in again" and "go back"
		// links lead there, where its submission is kept.
		defer func() { g.linksOnHost(err, ls.Handoff.Host) }()
	}
	if e := q.Get("error"); e != "" {
		g.metrics.logins.WithLabelValues("oidc", "provider_error").Inc()
		g.audit(r.Context(), "callback", "provider_refused", slog.String("method", "oidc"), slog.String("error", e))
		he := badLogin("The identity provider did not log you in ("+e+"). Your submission, if any, is still kept.", ls.ReturnURL)
		he.Login = loginURL(ls.StashID, ls.ReturnURL)
		return he
	}
	xctx, cancel := context.WithTimeout(r.Context(), providerTimeout)
	id, tokens, err := g.logins.oidc.Exchange(xctx, q.Get("code"), ls.Verifier, ls.Nonce)
	cancel()
	if err != nil {
		g.metrics.logins.WithLabelValues("oidc", "failed").Inc()
		if errors.Is(err, oidc.ErrUnavailable) {
			return providerDown(err, ls.StashID, ls.ReturnURL)
		}
		g.audit(r.Context(), "callback", "failed", slog.String("method", "oidc"), slog.String("error", err.Error()))
		he := badLogin("The login could not be verified. Please log in again; your submission, if any, is still kept.", ls.ReturnURL)
		he.Login, he.Cause = loginURL(ls.StashID, ls.ReturnURL), err
		return he
	}
	g.metrics.logins.WithLabelValues("oidc", "ok").Inc()
	who, err := g.startSession(r, ck, id, "oidc", tokens)
	if err != nil {
		return err
	}
	g.audit(r.Context(), "login", "ok", slog.String("method", "oidc"), slog.String("user", id.User))
	if ls.Handoff != nil {
		// The login started on a route's host: hand it back there, where
		// the submission is replayed with that host's cookies.
		return g.handBack(w, r, ck, who, *ls.Handoff)
	}
	return g.complete(w, r, ck, who, ls.StashID, ls.ReturnURL)
}

func badLogin(msg, back string) *httpError {
	return &httpError{Status: http.StatusBadRequest, Code: "login_failed", Title: "Login not completed",
		Message: msg, Login: loginURL("", back)}
}

func providerDown(err error, stash, rd string) *httpError {
	return &httpError{Status: http.StatusServiceUnavailable, Code: "idp_unavailable",
		Title: "The identity provider is not answering", Cause: err, Login: loginURL(stash, rd),
		Message: "The login service cannot be reached right now. Anything you submitted is kept; try again in a moment."}
}
