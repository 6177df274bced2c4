package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/postern/postern/auth"
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
	if !g.now().Before(rec.Expires) {
		return nil, nil
	}
	return &principal{sid: ck.SID, rec: rec}, nil
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
