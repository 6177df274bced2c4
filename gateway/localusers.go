package gateway

import (
	"context"
	"log/slog"
)

// userLister is what a PasswordChecker may also do: say whether a user is
// still listed (auth.HtpasswdFile, whose file is re-read while running).
type userLister interface {
	Has(user string) bool
}

// localUserGone reports whether a local login's user has been removed from
// the users file since. Their session is then refused: they are logged out
// at their next request and go to the login, where they cannot log in.
func (g *Gateway) localUserGone(ctx context.Context, sid, method, user string) bool {
	if method != "local" {
		return false
	}
	users, ok := g.logins.passwords.(userLister)
	if !ok || users.Has(user) {
		return false
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "session ended: user no longer in the htpasswd file", slog.String("user", user))
	_ = g.store.DeleteSession(ctx, sid)
	return true
}
