package gateway

import (
	"context"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/session"
)

// browserRecordTTL is how long the store remembers which browser id
// replaced which at a login: as long as anything bound to the old id (a
// kept submission, a login in progress in another tab) may still be used.
func (g *Gateway) browserRecordTTL() time.Duration {
	return max(g.opts.StashTTL, loginStateTTL) + session.TakenTTL
}

// rotateBrowser gives the browser a new id at login, so a cookie planted
// in it before the login (whose id the attacker knows) is worth nothing
// after it. What the old id owned — the submissions kept in this browser's
// tabs, their logins in progress — moves to the new id in one atomic store
// call; a copy of the old cookie owns nothing from then on.
func (g *Gateway) rotateBrowser(ctx context.Context, ck *session.Cookie, id auth.Identity, method string) error {
	person := method + ":" + id.User
	if id.Subject != "" {
		person = method + ":" + id.Subject
	}
	next, err := g.store.RetireBrowser(ctx, ck.BrowserID, session.NewID(), person, g.browserRecordTTL())
	if err != nil {
		return storeError(err)
	}
	if next == "" {
		// Someone else logged in with this very browser id: this cookie is
		// a copy of theirs (or they planted it). Start clean; carry nothing.
		next = session.NewID()
	}
	ck.BrowserID = next
	return nil
}

// owns reports whether what was bound to browser id owner (a stash, a kept
// answer, a login in progress) belongs to the browser with cookie ck.
func (g *Gateway) owns(ctx context.Context, ck *session.Cookie, owner string) (bool, error) {
	ok, err := g.store.Owns(ctx, ck.BrowserID, owner)
	if err != nil {
		return false, storeError(err)
	}
	return ok, nil
}
