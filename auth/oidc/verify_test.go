package oidc_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/auth/oidc/oidctest"
)

// kidOf returns the kid of the provider's current key, read from a token it
// signed.
func kidOf(t *testing.T, srv *oidctest.Server) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(srv.Sign(jwt.MapClaims{}), jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Header["kid"].(string)
}

func TestVerifyJWT(t *testing.T) {
	srv := oidctest.Start(t)
	c := newCounter()
	remote := oidc.NewRemote(srv.Issuer, "", oidc.RemoteOptions{HTTPClient: &http.Client{Transport: c}})
	t.Cleanup(remote.Close)
	keys, err := remote.Keyfunc(ctxTimeout(t))
	if err != nil {
		t.Fatalf("Keyfunc: %v", err)
	}
	now := time.Now()
	want := oidc.Expect{Issuer: srv.Issuer, Audience: srv.ClientID, AuthorizedParty: true, Nonce: "n-1",
		Now: func() time.Time { return now }}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": srv.Issuer, "aud": srv.ClientID, "sub": "id-alice", "nonce": "n-1",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "preferred_username": "alice"}
	}
	with := func(k string, v any) string {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return srv.Sign(c)
	}
	kid := kidOf(t, srv)

	strangerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger := jwt.NewWithClaims(jwt.SigningMethodES256, good())
	stranger.Header["kid"] = "not-the-providers"
	strangerRaw, err := stranger.SignedString(strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	// The same foreign key, claiming the provider's kid.
	impostor := jwt.NewWithClaims(jwt.SigningMethodES256, good())
	impostor.Header["kid"] = kid
	impostorRaw, err := impostor.SignedString(strangerKey)
	if err != nil {
		t.Fatal(err)
	}

	none := jwt.NewWithClaims(jwt.SigningMethodNone, good())
	none.Header["kid"] = kid
	noneRaw, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	// The classic key-confusion attack: HMAC keyed with the public key.
	der, err := x509.MarshalPKIXPublicKey(srv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
	hs.Header["kid"] = kid
	hsRaw, err := hs.SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		raw     string
		wantJWT error // nil: any ErrInvalidToken
	}{
		{"unknown key", strangerRaw, jwt.ErrTokenUnverifiable},
		{"foreign key with the provider's kid", impostorRaw, jwt.ErrTokenUnverifiable},
		{"alg none", noneRaw, jwt.ErrTokenSignatureInvalid},
		{"HS256 keyed with the public key", hsRaw, jwt.ErrTokenSignatureInvalid},
		{"expired", with("exp", now.Add(-time.Minute).Unix()), jwt.ErrTokenExpired},
		{"expired within leeway is fine", "", nil},
		{"no exp", with("exp", nil), jwt.ErrTokenRequiredClaimMissing},
		{"not yet valid", with("nbf", now.Add(time.Hour).Unix()), jwt.ErrTokenNotValidYet},
		{"issued in the future", with("iat", now.Add(time.Hour).Unix()), jwt.ErrTokenUsedBeforeIssued},
		{"wrong audience", with("aud", "someone-else"), jwt.ErrTokenInvalidAudience},
		{"no audience", with("aud", nil), jwt.ErrTokenRequiredClaimMissing},
		{"several audiences without azp", with("aud", []string{srv.ClientID, "other"}), jwt.ErrTokenInvalidAudience},
		{"azp of another client", with("azp", "other"), jwt.ErrTokenInvalidAudience},
		{"wrong issuer", with("iss", "https://evil.example"), jwt.ErrTokenInvalidIssuer},
		{"no subject", with("sub", nil), jwt.ErrTokenRequiredClaimMissing},
		{"wrong nonce", with("nonce", "n-2"), nil},
		{"tampered payload", srv.Sign(good())[:40] + "x" + srv.Sign(good())[41:], nil},
		{"garbage", "not.a.jwt", jwt.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.raw == "" { // the positive twin of "expired"
				claims, err := oidc.VerifyJWT(with("exp", now.Add(-10*time.Second).Unix()), keys, want)
				if err != nil || claims["sub"] != "id-alice" {
					t.Fatalf("token expired 10s ago (within leeway): %v", err)
				}
				return
			}
			claims, err := oidc.VerifyJWT(tt.raw, keys, want)
			if !errors.Is(err, oidc.ErrInvalidToken) {
				t.Fatalf("VerifyJWT = %v, %v; want ErrInvalidToken", claims, err)
			}
			if tt.wantJWT != nil && !errors.Is(err, tt.wantJWT) {
				t.Errorf("error %q does not wrap %q", err, tt.wantJWT)
			}
		})
	}

	t.Run("good token", func(t *testing.T) {
		claims, err := oidc.VerifyJWT(srv.Sign(good()), keys, want)
		if err != nil {
			t.Fatalf("VerifyJWT(good) = %v", err)
		}
		if claims["preferred_username"] != "alice" {
			t.Errorf("claims = %v", claims)
		}
		c := good()
		c["aud"] = []string{srv.ClientID, "other"}
		c["azp"] = srv.ClientID
		if _, err := oidc.VerifyJWT(srv.Sign(c), keys, want); err != nil {
			t.Errorf("several audiences with azp = client id: %v", err)
		}
	})
}

// A provider that rotates its key is followed (one JWKS refetch on the new
// kid), but a stream of tokens with unknown kids does not turn the gateway
// into a JWKS hammer: refetches are rate-limited.
func TestJWKSRefetchOnUnknownKidIsRateLimited(t *testing.T) {
	srv := oidctest.Start(t)
	c := newCounter()
	remote := oidc.NewRemote(srv.Issuer, "", oidc.RemoteOptions{HTTPClient: &http.Client{Transport: c}})
	t.Cleanup(remote.Close)
	ctx := ctxTimeout(t)
	if err := remote.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	const jwksPath = "/keys"
	if n := c.count(jwksPath); n != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", n)
	}
	keys, err := remote.Keyfunc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": srv.Issuer, "aud": "api", "sub": "s", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	want := oidc.Expect{Issuer: srv.Issuer, Audience: "api"}

	if _, err := oidc.VerifyJWT(srv.Sign(claims()), keys, want); err != nil {
		t.Fatalf("token with a known kid: %v", err)
	}
	if n := c.count(jwksPath); n != 1 {
		t.Fatalf("JWKS fetched %d times for a known kid, want 1", n)
	}

	srv.RotateKey()
	if _, err := oidc.VerifyJWT(srv.Sign(claims()), keys, want); err != nil {
		t.Fatalf("token with the rotated key: %v", err)
	}
	if n := c.count(jwksPath); n != 2 {
		t.Fatalf("JWKS fetched %d times after rotation, want 2", n)
	}

	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims())
		tok.Header["kid"] = "unknown-" + string(rune('a'+i))
		raw, err := tok.SignedString(foreign)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := oidc.VerifyJWT(raw, keys, want); !errors.Is(err, oidc.ErrInvalidToken) {
			t.Fatalf("token %d with unknown kid accepted: %v", i, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("refusing an unknown kid took %v; the rate limit must refuse, not wait", d)
		}
	}
	if n := c.count(jwksPath); n != 2 {
		t.Errorf("JWKS fetched %d times after 20 unknown kids within the refetch interval, want still 2", n)
	}
}
