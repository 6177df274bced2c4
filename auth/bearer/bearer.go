package bearer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/oidc"
)

// ErrUnavailable is wrapped by Verify's error when the issuer's discovery
// document or key set cannot be fetched: not the client's fault.
var ErrUnavailable = oidc.ErrUnavailable

// Config says which tokens are accepted.
type Config struct {
	// Issuer is the exact iss tokens must carry.
	Issuer string
	// Audience must be one of the token's aud values (this API's name at
	// the issuer).
	Audience string
	// JWKSURL is where the issuer's keys are; empty means from the issuer's
	// /.well-known/openid-configuration.
	JWKSURL string
	// GroupsClaim names the claim holding groups; "groups" if empty.
	GroupsClaim string
	// HTTPClient fetches discovery and keys; http.DefaultClient if nil.
	HTTPClient *http.Client
	// Now is the clock for token lifetimes and retry back-off; time.Now if
	// nil.
	Now func() time.Time
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("jwt issuer: required (the iss of accepted tokens)"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("jwt audience: required (the aud accepted tokens must carry)"))
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("jwt jwks url: %q is not an absolute URL", c.JWKSURL))
		}
	}
	return errors.Join(errs...)
}

// Error is a refused token. Its message is safe to show the client (in
// WWW-Authenticate error_description); the cause, for logs and errors.Is,
// is behind Unwrap.
type Error struct {
	Description string
	cause       error
}

func (e *Error) Error() string { return e.Description }

// Unwrap returns the detailed cause.
func (e *Error) Unwrap() error { return e.cause }

// Verifier checks bearer tokens from one issuer. Safe for concurrent use.
type Verifier struct {
	cfg    Config
	remote *oidc.Remote
	cache  *tokenCache
}

// New prepares a Verifier; it does no network I/O and never fails. Check
// cfg.Validate before.
func New(cfg Config) *Verifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	remote := oidc.NewRemote(cfg.Issuer, cfg.JWKSURL, oidc.RemoteOptions{HTTPClient: cfg.HTTPClient, Now: cfg.Now})
	return &Verifier{cfg: cfg, remote: remote, cache: newTokenCache()}
}

// Close stops background key refreshes.
func (v *Verifier) Close() { v.remote.Close() }

// Ready reports whether the issuer's keys have been fetched, trying now if
// not.
func (v *Verifier) Ready(ctx context.Context) error { return v.remote.Ready(ctx) }

// Verify checks raw and returns the identity it carries. Errors are *Error.
//
// A token verified before is not verified again until its exp, as long as
// the issuer's key set still holds the key that verified it (see
// CacheSize); only its hash is kept.
func (v *Verifier) Verify(ctx context.Context, raw string) (auth.Identity, error) {
	sum := sha256.Sum256([]byte(raw))
	if id, ok := v.cache.get(ctx, sum, v.cfg.Now(), v.remote.Key); ok {
		return id, nil
	}
	keys, err := v.remote.Keyfunc(ctx)
	if err != nil {
		return auth.Identity{}, &Error{Description: "token issuer unavailable, try again later", cause: err}
	}
	var kid string
	var key any
	claims, err := oidc.VerifyJWT(raw, recordKey(keys, &kid, &key), oidc.Expect{
		Issuer:   v.cfg.Issuer,
		Audience: v.cfg.Audience,
		Now:      v.cfg.Now,
	})
	if err != nil {
		return auth.Identity{}, &Error{Description: describe(err), cause: err}
	}
	id := oidc.IdentityFromClaims(claims, v.cfg.GroupsClaim)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil && kid != "" {
		v.cache.add(sum, verified{id: id, exp: exp.Time, kid: kid, key: key})
	}
	return id, nil
}

// describe names what was wrong with a token without internals (no key
// ids, URLs or library messages).
func describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token audience not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token issuer not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature not accepted"
	}
	return "invalid token"
}
