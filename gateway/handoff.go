package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/session"
)

// handoffTTL bounds each hop of a login between hosts. Both hops are
// redirects the browser follows at once; a token found later is refused.
const handoffTTL = 30 * time.Second

// A route chosen by host (shop.example.com) is served on another host than
// the public URL's (apps.example.com), where the identity provider sends its
// callback, and the session cookie is host-only. An OIDC login started on
// the route's host therefore travels the way Pomerium's authenticate service
// does it:
//
//  1. signInElsewhere (route host): a one-time token, bound to this
//     browser's cookie on the route host, names the login (host, stash,
//     return path); the browser goes to the public host's
//     /.postern/signin?token=...
//  2. signIn (public host): the token is taken (once), and the login runs
//     as usual with the public host's cookie (state, nonce, PKCE), carrying
//     the handoff in its state. A person logged in there already skips the
//     provider: single sign-on across hosts with host-only cookies.
//  3. handBack (public host, after the callback): a second one-time token
//     names the new session; the browser goes to the route host's
//     /.postern/handoff?token=...
//  4. handoff (route host): the token is taken (once, atomically in the
//     store), must be for this host and this browser, and sets this host's
//     cookie; then the login completes there: the stash is replayed once
//     with the route host's cookies and the person lands on the result.
//
// Tokens are unguessable ids whose handoffs live sealed in the store for
// seconds. The hosts a browser is ever sent to are the configured routes'
// hosts, never one taken from a request.

// onPublicHost reports whether r was sent to the public URL's host.
func (g *Gateway) onPublicHost(r *http.Request) bool {
	return strings.EqualFold(hostName(r.Host), g.opts.PublicURL.Hostname())
}

// routeHost returns the configured route host r was sent to, if any.
func (g *Gateway) routeHost(r *http.Request) (string, bool) {
	return g.configuredHost(hostName(r.Host))
}

// configuredHost returns host as a configured route's host, if it is one.
func (g *Gateway) configuredHost(host string) (string, bool) {
	for _, rt := range g.opts.Routes {
		if rt.Host != "" && strings.EqualFold(rt.Host, host) {
			return strings.ToLower(rt.Host), true
		}
	}
	return "", false
}

// hostURL is the absolute URL of path on a route host: the public URL's
// scheme and port (the same listener serves every host), the route's host.
func (g *Gateway) hostURL(host, path string, q url.Values) string {
	u := url.URL{Scheme: g.opts.PublicURL.Scheme, Host: host, Path: path}
	if port := g.opts.PublicURL.Port(); port != "" {
		u.Host += ":" + port
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// signInElsewhere starts an OIDC login on a route's host by sending the
// browser to the public host with a one-time token (step 1).
func (g *Gateway) signInElsewhere(w http.ResponseWriter, r *http.Request, ck *session.Cookie, stash, rd string) error {
	host, ok := g.routeHost(r)
	if !ok {
		// A catch-all route answers any Host; the login could never come
		// back to one that is not configured. The public URL's host serves
		// the same routes: log in there instead (nothing is kept yet), or
		// say why not (a kept submission belongs to this host's cookie).
		there := g.opts.PublicURL.String() + loginURL("", rd)
		if stash == "" {
			seeOther(w, there)
			return nil
		}
		he := unknownHost()
		he.Login = there
		return he
	}
	token := session.NewID()
	h := session.Handoff{Host: host, BrowserID: ck.BrowserID, StashID: stash, ReturnURL: rd, Created: g.now()}
	if err := g.store.SaveHandoff(r.Context(), token, h, handoffTTL); err != nil {
		return storeError(err)
	}
	if err := g.saveCookie(w, r, ck); err != nil {
		return err
	}
	to := g.opts.PublicURL.JoinPath(prefix, "signin")
	to.RawQuery = url.Values{"token": {token}}.Encode()
	seeOther(w, to.String())
	return nil
}

// signIn serves /.postern/signin on the public host (step 2).
func (g *Gateway) signIn(w http.ResponseWriter, r *http.Request) error {
	ck := cookieFrom(r.Context())
	if !g.onPublicHost(r) || g.logins.oidc == nil {
		return &httpError{Status: http.StatusNotFound, Code: "not_found", Title: "Not found",
			Message: "There is no such page of the gateway."}
	}
	h, err := g.takeHandoff(r, false)
	if err != nil {
		return err
	}
	who, err := g.identify(r.Context(), r, ck)
	if err != nil {
		return err
	}
	if who != nil && who.sid != "" {
		// Logged in here already: no trip to the provider.
		return g.handBack(w, r, ck, who, h)
	}
	return g.toProvider(w, r, ck, session.LoginState{StashID: h.StashID, ReturnURL: h.ReturnURL, Handoff: &h})
}

// handBack sends a browser logged in on the public host back to the route
// host its login started on, with a one-time token naming the session
// (step 3).
func (g *Gateway) handBack(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, h session.Handoff) error {
	host, ok := g.configuredHost(h.Host)
	if !ok {
		return unknownHost()
	}
	h.SID, h.Created = who.sid, g.now()
	token := session.NewID()
	if err := g.store.SaveHandoff(r.Context(), token, h, handoffTTL); err != nil {
		return storeError(err)
	}
	if err := g.saveCookie(w, r, ck); err != nil {
		return err
	}
	seeOther(w, g.hostURL(host, prefix+"handoff", url.Values{"token": {token}}))
	return nil
}

// handoff serves /.postern/handoff on a route's host: it sets this host's
// cookie from a one-time token and completes the login here (step 4).
func (g *Gateway) handoff(w http.ResponseWriter, r *http.Request) error {
	ck := cookieFrom(r.Context())
	host, ok := g.routeHost(r)
	if !ok {
		// Refused before the token is looked at: it stays unusable anywhere
		// but on its own host.
		return unknownHost()
	}
	h, err := g.takeHandoff(r, true)
	if err != nil {
		return err
	}
	if h.Host != host {
		g.log.LogAttrs(r.Context(), slog.LevelWarn, "login handoff refused: token for another host",
			slog.String("host", host), slog.String("token_host", h.Host))
		return badHandoff(http.StatusBadRequest, "This login was meant for another address. Please log in again.", loginURL(h.StashID, h.ReturnURL))
	}
	// Bound to the browser that started the login here (its id may have
	// moved on since, if another tab of it logged in: owns follows that).
	if owned, err := g.owns(r.Context(), ck, h.BrowserID); err != nil {
		return err
	} else if !owned {
		g.log.LogAttrs(r.Context(), slog.LevelWarn, "login handoff refused: another browser", slog.String("host", host))
		return badHandoff(http.StatusForbidden, "This login was started in another browser. Please log in again here.", loginURL("", "/"))
	}
	rec, err := g.store.GetSession(r.Context(), h.SID)
	switch {
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		return badHandoff(http.StatusBadRequest, "This login has ended in the meantime. Please log in again; your submission, if any, is still kept.", loginURL(h.StashID, h.ReturnURL))
	case err != nil:
		return storeError(err)
	}
	if ck.SID != "" && ck.SID != h.SID {
		_ = g.store.DeleteSession(r.Context(), ck.SID)
	}
	// This host's cookie is logged in from now on: its browser id changes,
	// as at any login, so a cookie planted here before is worth nothing.
	if err := g.rotateBrowser(r.Context(), ck, auth.Identity{User: rec.User, Subject: rec.Subject}, rec.Method); err != nil {
		return err
	}
	ck.SID = h.SID
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "login handed off", slog.String("user", rec.User), slog.String("host", host))
	return g.complete(w, r, ck, &principal{sid: h.SID, rec: rec}, h.StashID, h.ReturnURL)
}

// takeHandoff takes the handoff named by the request's token, once. done
// says which hop it must be: one with a session (handoff) or one without
// (signin).
func (g *Gateway) takeHandoff(r *http.Request, done bool) (session.Handoff, error) {
	token := r.URL.Query().Get("token")
	used := badHandoff(http.StatusBadRequest, "This login link was already used or has expired. Please log in again.", loginURL("", "/"))
	if !validID(token) {
		return session.Handoff{}, used
	}
	h, err := g.store.TakeHandoff(r.Context(), token)
	switch {
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		g.metrics.logins.WithLabelValues("handoff", "bad_token").Inc()
		return session.Handoff{}, used
	case err != nil:
		return session.Handoff{}, storeError(err)
	}
	if (h.SID != "") != done || g.now().Sub(h.Created) > handoffTTL {
		g.metrics.logins.WithLabelValues("handoff", "bad_token").Inc()
		return session.Handoff{}, used
	}
	return h, nil
}

// linksOnHost points an error page's links (paths on this host) at the
// route host the login came from.
func (g *Gateway) linksOnHost(err error, host string) {
	var he *httpError
	if !errors.As(err, &he) {
		return
	}
	for _, link := range []*string{&he.Login, &he.BackURL} {
		if u, perr := url.Parse(*link); perr == nil && *link != "" && u.Host == "" && strings.HasPrefix(u.Path, "/") {
			*link = g.hostURL(host, u.Path, u.Query())
		}
	}
}

func badHandoff(status int, msg, login string) *httpError {
	return &httpError{Status: status, Code: "handoff_refused", Title: "Login not completed", Message: msg, Login: login}
}

func unknownHost() *httpError {
	return &httpError{Status: http.StatusBadRequest, Code: "unknown_host", Title: "Login not possible at this address",
		Message: "This address is not one of the hosts the gateway is configured for, so a login cannot return to it. " +
			"Open the application at its configured address."}
}

// hostName is a Host header's name without port or IPv6 brackets.
func hostName(hostport string) string {
	return strings.TrimSuffix(strings.TrimPrefix(hostOnly(hostport), "["), "]")
}
