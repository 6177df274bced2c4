package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/session"
)

// refreshAhead is how long before the access token expires the gateway
// refreshes it, so a working session is never bounced to the provider.
const refreshAhead = time.Minute

// refreshLeaseTTL is how long one gateway may hold a session's refresh
// lease: longer than a provider call may take (providerTimeout), so a
// refresh in flight never loses it, and short enough that a gateway that
// died holding it blocks nobody for long.
const refreshLeaseTTL = providerTimeout + 5*time.Second

// refreshWait bounds how long a request waits for another gateway's refresh
// of its session before it goes on with the tokens it has (they are still
// valid: a refresh starts refreshAhead before they expire).
const refreshWait = 5 * time.Second

// refreshPoll is how often a waiting request re-reads the session record.
const refreshPoll = 25 * time.Millisecond

// refreshDue reports whether rec's access token should be refreshed now.
func refreshDue(rec session.Record, now time.Time) bool {
	return rec.RefreshToken != "" && !rec.TokenExpiry.IsZero() && now.Add(refreshAhead).After(rec.TokenExpiry)
}

// refreshLeaseName names the lease on refreshing session sid.
func refreshLeaseName(sid string) string { return "refresh:" + sid }

// refresh renews an OIDC session's access token shortly before it expires.
// A rotating refresh token may be spent only once (providers that detect
// reuse revoke the session), so:
//
//   - in one process, concurrent requests of a session share one refresh
//     (singleflight);
//   - across the gateways sharing the store, one refreshes at a time: it
//     holds the session's refresh lease in the store (one atomic SetNX), and
//     the others re-read the session record until the new tokens are there;
//   - the refresh runs to its end even if the request that started it goes
//     away (a rotated refresh token that is not saved would end the session).
//
// A provider that rejects the refresh token ends the session (the next
// submission goes through the stash flow again and loses nothing); a
// provider or store that cannot be reached leaves the session as it is.
func (g *Gateway) refresh(ctx context.Context, p *principal) (*principal, error) {
	v, err, _ := g.refreshes.Do(p.sid, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), providerTimeout+refreshWait)
		defer cancel()
		return g.refreshShared(rctx, p)
	})
	switch {
	case err == nil:
		return v.(*principal), nil
	case errors.Is(err, errSessionGone):
		return nil, nil
	case errors.Is(err, oidc.ErrUnavailable):
		g.log.LogAttrs(ctx, slog.LevelWarn, "token refresh postponed: provider unavailable", slog.String("user", p.rec.User))
		return p, nil
	}
	return nil, err
}

// errSessionGone means the session ended while its refresh was waited for
// (another gateway's refresh was rejected, or the person logged out).
var errSessionGone = errors.New("session ended")

// refreshShared is one process's refresh of p's session, coordinated with
// the other gateways through the refresh lease.
func (g *Gateway) refreshShared(ctx context.Context, p *principal) (*principal, error) {
	waitUntil := time.Now().Add(refreshWait)
	for {
		lease, ok, err := g.store.AcquireLease(ctx, refreshLeaseName(p.sid), refreshLeaseTTL)
		if err != nil {
			return nil, storeError(err)
		}
		if ok {
			defer func() { _ = g.store.Release(context.WithoutCancel(ctx), lease) }()
			// Another gateway may have refreshed between our read of the
			// record and our lease: its tokens are the ones to use.
			cur, fresh, err := g.reread(ctx, p)
			if err != nil || fresh {
				return cur, err
			}
			next, err := g.refreshTokens(ctx, cur)
			if err != nil && !errors.Is(err, oidc.ErrUnavailable) && !errors.As(err, new(*httpError)) {
				// The provider refused the refresh token: the session ends,
				// while the lease is still held, so no other gateway
				// presents the refused token again.
				g.log.LogAttrs(ctx, slog.LevelInfo, "token refresh rejected, session ended",
					slog.String("user", p.rec.User), slog.String("error", err.Error()))
				if derr := g.store.DeleteSession(ctx, p.sid); derr != nil {
					return nil, storeError(derr)
				}
				return nil, errSessionGone
			}
			return next, err
		}
		// Another gateway holds the lease: its new tokens will be in the
		// record when it is done.
		t := time.NewTimer(refreshPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return p, nil
		case <-t.C:
		}
		cur, fresh, err := g.reread(ctx, p)
		if err != nil || fresh {
			return cur, err
		}
		if time.Now().After(waitUntil) {
			// The holder is slow or gone; the tokens we have are still
			// good for a while, and its lease lapses on its own.
			return p, nil
		}
	}
}

// reread loads p's session record again and reports whether its tokens are
// newer than p's (another gateway refreshed them).
func (g *Gateway) reread(ctx context.Context, p *principal) (*principal, bool, error) {
	// From the store itself, not the copy kept in memory: a refresh token
	// must never be spent twice because a notice of another gateway's
	// refresh was lost.
	rec, err := g.store.ReloadSession(ctx, p.sid)
	switch {
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt):
		return nil, false, errSessionGone
	case err != nil:
		return nil, false, storeError(err)
	}
	cur := &principal{sid: p.sid, rec: rec}
	fresh := rec.RefreshToken != p.rec.RefreshToken || rec.TokenExpiry.After(p.rec.TokenExpiry) || !refreshDue(rec, g.now())
	return cur, fresh, nil
}

// refreshTokens redeems p's refresh token at the provider and saves the new
// tokens in the session record. The caller holds the refresh lease.
func (g *Gateway) refreshTokens(ctx context.Context, p *principal) (*principal, error) {
	pctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()
	id, tokens, err := g.logins.oidc.Refresh(pctx, p.rec.RefreshToken)
	if err != nil {
		return nil, err
	}
	if id.Subject != "" && id.Subject != p.rec.Subject {
		return nil, fmt.Errorf("refresh returned another subject: %w", oidc.ErrRejected)
	}
	rec := p.rec
	if id.Subject != "" {
		// The provider's current view of the person: a changed email or
		// group membership applies from this refresh on.
		rec.User, rec.Email, rec.Groups = id.User, id.Email, id.Groups
	}
	rec.AccessToken, rec.TokenExpiry = tokens.AccessToken, tokens.Expiry
	if tokens.RefreshToken != "" {
		rec.RefreshToken = tokens.RefreshToken
	}
	if tokens.IDToken != "" {
		rec.IDToken = tokens.IDToken
	}
	if err := g.store.SaveSession(ctx, p.sid, rec, rec.Expires.Sub(g.now())); err != nil {
		return nil, storeError(err)
	}
	return &principal{sid: p.sid, rec: rec}, nil
}
