package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth/oidc"
)

// FuzzVerifyJWT feeds untrusted token text to the verifier: it must never
// panic, and whatever it accepts carries a subject and was signed with an
// allowed algorithm.
func FuzzVerifyJWT(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.AlgES256, KID: "k1"}})
	if err != nil {
		f.Fatal(err)
	}
	store := jwkset.NewMemoryStorage()
	if err := store.KeyWrite(context.Background(), jwk); err != nil {
		f.Fatal(err)
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	want := oidc.Expect{Issuer: "https://id.example", Audience: "c", Now: func() time.Time { return now }}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": want.Issuer, "aud": "c", "sub": "s",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	good, err := tok.SignedString(key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzIn0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := oidc.VerifyJWT(raw, kf.Keyfunc, want)
		if err != nil {
			return
		}
		if sub, _ := claims["sub"].(string); sub == "" {
			t.Fatalf("accepted a token without sub: %q", raw)
		}
		parsed, _, perr := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
		if perr != nil || !slices.Contains(oidc.Algorithms(), parsed.Method.Alg()) {
			t.Fatalf("accepted %q with algorithm outside the allow-list", raw)
		}
	})
}
