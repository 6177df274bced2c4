package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/bearer"
	"github.com/postern/postern/session"
)

// principal is who a request comes from: a logged-in session.
type principal struct {
	sid string
	rec session.Record
}

func (p *principal) identity() auth.Identity {
	return auth.Identity{User: p.rec.User, Email: p.rec.Email, Groups: p.rec.Groups, Subject: p.rec.Subject}
}

// identify returns who the request comes from, or nil when no one is logged
// in. A store that cannot answer is an error (the gateway fails closed).
func (g *Gateway) identify(ctx context.Context, r *http.Request, ck *session.Cookie) (*principal, error) {
	if raw, ok := bearerToken(r); ok && g.bearer != nil {
		return g.identifyBearer(ctx, raw)
	}
	if ck.SID == "" {
		return nil, nil
	}
	rec, err := g.store.GetSession(ctx, ck.SID)
	switch {
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		return nil, nil
	case err != nil:
		return nil, storeError(err)
	}
	now := g.now()
	if !now.Before(rec.Expires) || g.localUserGone(ctx, ck.SID, rec.Method, rec.User) {
		return nil, nil
	}
	p := &principal{sid: ck.SID, rec: rec}
	if g.logins.oidc != nil && refreshDue(rec, now) {
		return g.refresh(ctx, p)
	}
	return p, nil
}

// identifyBearer checks an API client's bearer JWT. A bad token is the
// client's error: 401 with a WWW-Authenticate challenge that says why.
func (g *Gateway) identifyBearer(ctx context.Context, raw string) (*principal, error) {
	id, err := g.bearer.Verify(ctx, raw)
	if err != nil {
		if errors.Is(err, bearer.ErrUnavailable) {
			return nil, &httpError{Status: http.StatusServiceUnavailable, Code: "issuer_unavailable",
				Title: "Temporarily unavailable", Message: "The token issuer cannot be reached to check the token.", Cause: err}
		}
		return nil, &httpError{Status: http.StatusUnauthorized, Code: "invalid_token", Title: "Invalid token",
			Message:   err.Error(),
			Challenge: `Bearer realm="postern", error="invalid_token", error_description="` + strings.ReplaceAll(err.Error(), `"`, "'") + `"`}
	}
	return &principal{rec: session.Record{User: id.User, Email: id.Email, Groups: id.Groups, Subject: id.Subject, Method: "bearer"}}, nil
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// wantsHTML reports whether the request is a browser page load, which gets
// pages and redirects into the login; anything else (API clients, fetch and
// XHR) gets JSON and 401 instead (SPEC §2).
func wantsHTML(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	for _, a := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(a), "text/html") {
			return true
		}
	}
	return false
}
