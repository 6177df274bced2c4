package session

import (
	"context"
	"fmt"
	"time"
)

// nsHandoff holds handoffs between the gateway's hosts.
const nsHandoff = "handoff:"

// Handoff carries a login between two of the gateway's hosts, the way
// Pomerium's authenticate service hands a session to a route's host: a
// browser on a route's host (Host) that needs an OIDC login is sent to the
// public URL's host with one (SID empty: "log this browser in"), and after
// the provider's callback there it comes back with another (SID set: "this
// browser is now logged in"), which sets the route host's own cookie.
//
// A handoff is named by an unguessable one-time token, lives for seconds,
// is taken at most once (TakeHandoff), and is bound to the browser that
// started the login on Host: only that browser's cookie can complete it.
type Handoff struct {
	// Host is the route's host (a configured one, without port) the login
	// started on and ends on.
	Host string
	// BrowserID is that browser's id on Host.
	BrowserID string
	// StashID is the pending submission to replay on Host, if any.
	StashID string
	// ReturnURL is the path on Host to return to when there is no stash.
	ReturnURL string
	// SID is the session the login created; empty until the login is done.
	SID string
	// Created is when the handoff was made; it expires soon after.
	Created time.Time
}

// SaveHandoff keeps a handoff under its token for ttl.
func (st *Store) SaveHandoff(ctx context.Context, token string, h Handoff, ttl time.Duration) error {
	if err := st.setRecord(ctx, nsHandoff, token, h, ttl); err != nil {
		return fmt.Errorf("save handoff: %w", err)
	}
	return nil
}

// TakeHandoff returns and removes the handoff under token in one atomic
// step of the backend, so a token is used at most once: a second call, even
// concurrent or on another replica, gets ErrNotFound.
func (st *Store) TakeHandoff(ctx context.Context, token string) (Handoff, error) {
	var h Handoff
	key, err := entryKey(nsHandoff, token)
	if err != nil {
		return h, fmt.Errorf("take handoff: %w: %w", ErrNotFound, err)
	}
	sealed, err := st.b.GetDelete(ctx, key)
	if err != nil {
		return h, fmt.Errorf("take handoff: %w", err)
	}
	if err := st.open(key, sealed, &h); err != nil {
		return Handoff{}, fmt.Errorf("take handoff: %w", err)
	}
	return h, nil
}
