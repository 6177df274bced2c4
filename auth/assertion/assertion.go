package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth"
)

// TTL is how long an assertion is valid. It only has to outlive the hop
// from gateway to upstream.
const TTL = 60 * time.Second

// Signer signs identity assertions with a P-256 key made when it is
// created. Restarting the gateway makes a new key; upstreams that cache
// the key set refetch it on the unknown kid. Safe for concurrent use.
type Signer struct {
	issuer string
	now    func() time.Time
	key    *ecdsa.PrivateKey
	kid    string
	jwks   []byte
}

// Claims is what an assertion carries, for upstreams written in Go that
// parse it with jwt/v5.
type Claims struct {
	jwt.RegisteredClaims
	User   string   `json:"user"`
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// NewSigner makes a fresh key. issuer is the gateway's public URL (the iss
// of every assertion); now is the clock, time.Now if nil.
func NewSigner(issuer string, now func() time.Time) (*Signer, error) {
	if issuer == "" {
		return nil, errors.New("assertion issuer: required (the gateway's public URL)")
	}
	if now == nil {
		now = time.Now
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate assertion key: %w", err)
	}
	kid := rand.Text()
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.AlgES256, KID: kid, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, fmt.Errorf("assertion jwk: %w", err)
	}
	set := jwkset.NewMemoryStorage()
	ctx := context.Background()
	if err := set.KeyWrite(ctx, jwk); err != nil {
		return nil, fmt.Errorf("assertion jwk set: %w", err)
	}
	jwks, err := set.JSONPublic(ctx)
	if err != nil {
		return nil, fmt.Errorf("assertion jwk set json: %w", err)
	}
	return &Signer{issuer: issuer, now: now, key: key, kid: kid, jwks: jwks}, nil
}

// Sign returns an assertion of id for audience (the upstream's origin,
// e.g. "http://orders.internal:8080"): iss, aud, sub, user, email, groups,
// iat, nbf, exp (TTL later) and a unique jti.
func (s *Signer) Sign(id auth.Identity, audience string) (string, error) {
	if audience == "" {
		return "", errors.New("sign assertion: empty audience")
	}
	sub := id.Subject
	if sub == "" {
		sub = id.User
	}
	if sub == "" {
		return "", errors.New("sign assertion: identity has no subject")
	}
	now := s.now()
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   sub,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(TTL)),
			ID:        rand.Text(),
		},
		User:   id.User,
		Email:  id.Email,
		Groups: id.Groups,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = s.kid
	raw, err := tok.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	return raw, nil
}

// JWKS returns the public key set as JSON, to serve at /.postern/jwks.json
// with Content-Type application/json. The caller must not modify it.
func (s *Signer) JWKS() []byte { return s.jwks }
