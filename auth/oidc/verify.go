package oidc

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken means a token failed verification: signature, algorithm,
// issuer, audience, lifetime or nonce. The wrapped jwt error (errors.Is with
// jwt.ErrTokenExpired and friends) says which.
var ErrInvalidToken = errors.New("invalid token")

// errNonce is wrapped in ErrInvalidToken when the ID token's nonce differs.
var errNonce = errors.New("nonce mismatch")

// Algorithms returns the allow-list of signature algorithms postern accepts.
// Never "none", never HMAC: a shared secret cannot come from a public JWKS,
// and accepting HS* would let anyone sign with the public key's bytes.
func Algorithms() []string { return append([]string(nil), algorithms[:]...) }

var algorithms = [...]string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// Expect says what a token must carry to be accepted by VerifyJWT.
type Expect struct {
	Issuer   string // exact iss
	Audience string // must be one of aud
	// AuthorizedParty applies the OpenID Connect ID token rule: when aud
	// has several values an azp claim is required, and any azp must equal
	// Audience (the client id).
	AuthorizedParty bool
	// Nonce, when not empty, must equal the nonce claim.
	Nonce  string
	Now    func() time.Time // time.Now if nil
	Leeway time.Duration    // DefaultLeeway if zero
}

// VerifyJWT parses raw, checks its signature with keys (algorithm from the
// allow-list only), then iss, aud, exp (required), nbf and iat, and returns
// its claims. A non-empty sub is required. Every failure wraps
// ErrInvalidToken.
func VerifyJWT(raw string, keys jwt.Keyfunc, want Expect) (jwt.MapClaims, error) {
	now := want.Now
	if now == nil {
		now = time.Now
	}
	leeway := want.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, keys,
		jwt.WithValidMethods(algorithms[:]),
		jwt.WithIssuer(want.Issuer),
		jwt.WithAudience(want.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, fmt.Errorf("%w: no subject: %w", ErrInvalidToken, jwt.ErrTokenRequiredClaimMissing)
	}
	if want.AuthorizedParty {
		aud, _ := claims.GetAudience()
		azp, hasAZP := claims["azp"].(string)
		if len(aud) > 1 && !hasAZP {
			return nil, fmt.Errorf("%w: several audiences and no azp: %w", ErrInvalidToken, jwt.ErrTokenInvalidAudience)
		}
		if _, present := claims["azp"]; present && azp != want.Audience {
			return nil, fmt.Errorf("%w: azp is not the client id: %w", ErrInvalidToken, jwt.ErrTokenInvalidAudience)
		}
	}
	if want.Nonce != "" {
		got, _ := claims["nonce"].(string)
		if subtle.ConstantTimeCompare([]byte(got), []byte(want.Nonce)) != 1 {
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errNonce)
		}
	}
	return claims, nil
}
