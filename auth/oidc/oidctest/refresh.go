package oidctest

import (
	"context"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// rotation adds what real providers do with refresh tokens on top of the
// example storage's rotation (every refresh hands out a new refresh token
// and retires the old one): reuse detection. A refresh token presented a
// second time revokes its whole family — every refresh token that
// descends from the same login — as RFC 9700 §4.14.2 recommends, so a
// client that spends one token twice loses the session.
type rotation struct {
	mu        sync.Mutex
	family    map[string]string // live refresh token -> family (its login)
	spent     map[string]string // used refresh token -> family
	revoked   map[string]bool   // families revoked for reuse
	grants    int               // successful refresh grants
	reuses    int               // families revoked because a spent token came again
	accessTTL time.Duration     // lifetime announced for access tokens; the example's 5 minutes if 0
}

func newRotation() rotation {
	return rotation{family: map[string]string{}, spent: map[string]string{}, revoked: map[string]bool{}}
}

// RefreshStats reports how many refresh grants succeeded and how many
// logins were revoked because one of their spent refresh tokens was
// presented again.
func (s *Server) RefreshStats() (grants, reuses int) {
	r := &s.store.rotation
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.grants, r.reuses
}

// SetAccessTokenLifetime sets the lifetime the provider announces for the
// access tokens it issues from now on (expires_in), so a test can hand out
// tokens that are due for refresh at once; 0 restores the default (5
// minutes).
func (s *Server) SetAccessTokenLifetime(d time.Duration) {
	r := &s.store.rotation
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accessTTL = d
}

func errReused() error {
	return oidc.ErrInvalidGrant().WithDescription("refresh token already used; the session is revoked")
}

// TokenRequestByRefreshToken refuses a spent or revoked refresh token, and
// revokes the family of a spent one.
func (s *store) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	r := &s.rotation
	r.mu.Lock()
	if fam, ok := r.spent[token]; ok {
		r.reuseLocked(fam)
		r.mu.Unlock()
		return nil, errReused()
	}
	if r.revoked[r.family[token]] {
		r.mu.Unlock()
		return nil, errReused()
	}
	r.mu.Unlock()
	return s.Storage.TokenRequestByRefreshToken(ctx, token)
}

// CreateAccessAndRefreshTokens spends current (a refresh grant) exactly
// once: of two grants racing with one token, the second finds it spent and
// revokes the family.
func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	r := &s.rotation
	fam := ""
	if current != "" {
		r.mu.Lock()
		if f, ok := r.spent[current]; ok {
			r.reuseLocked(f)
			r.mu.Unlock()
			return "", "", time.Time{}, errReused()
		}
		fam = r.family[current]
		if fam == "" {
			fam = current
		}
		if r.revoked[fam] {
			r.mu.Unlock()
			return "", "", time.Time{}, errReused()
		}
		r.spent[current] = fam
		delete(r.family, current)
		r.mu.Unlock()
	}
	id, next, exp, err := s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	if err != nil {
		return "", "", time.Time{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if fam == "" {
		fam = next
	}
	if next != "" {
		r.family[next] = fam
	}
	if current != "" {
		r.grants++
	}
	if r.accessTTL > 0 {
		exp = time.Now().Add(r.accessTTL)
	}
	return id, next, exp, nil
}

// reuseLocked revokes the family fam, counting the reuse that did it (a
// client may send the refused grant again, with another way of
// authenticating: that is not a second reuse).
func (r *rotation) reuseLocked(fam string) {
	if !r.revoked[fam] {
		r.reuses++
	}
	r.revoked[fam] = true
}
