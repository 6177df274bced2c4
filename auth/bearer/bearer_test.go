package bearer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth/bearer"
	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/auth/oidc/oidctest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestVerify(t *testing.T) {
	srv := oidctest.Start(t)
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": srv.Issuer, "aud": []string{"orders-api", "other"}, "sub": "svc-1",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"preferred_username": "robot", "email": "robot@example.com", "roles": []string{"writers"}}
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
	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	strangerRaw, err := jwt.NewWithClaims(jwt.SigningMethodES256, good()).SignedString(foreign)
	if err != nil {
		t.Fatal(err)
	}
	noneRaw, err := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(srv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	hsRaw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, good()).
		SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}

	for _, viaDiscovery := range []bool{true, false} {
		name := "jwks-from-discovery"
		cfg := bearer.Config{Issuer: srv.Issuer, Audience: "orders-api", GroupsClaim: "roles",
			Now: func() time.Time { return now }}
		if !viaDiscovery {
			name = "explicit-jwks-url"
			cfg.JWKSURL = srv.JWKSURL()
		}
		t.Run(name, func(t *testing.T) {
			var discovery int
			var mu sync.Mutex
			cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if strings.HasSuffix(r.URL.Path, "/openid-configuration") {
					mu.Lock()
					discovery++
					mu.Unlock()
				}
				return http.DefaultTransport.RoundTrip(r)
			})}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			v := bearer.New(cfg)
			t.Cleanup(v.Close)

			id, err := v.Verify(ctxTimeout(t), srv.Sign(good()))
			if err != nil {
				t.Fatalf("Verify(good) = %v", err)
			}
			if id.User != "robot" || id.Subject != "svc-1" || id.Email != "robot@example.com" || !slices.Equal(id.Groups, []string{"writers"}) {
				t.Errorf("identity = %+v", id)
			}
			mu.Lock()
			if viaDiscovery != (discovery == 1) {
				t.Errorf("discovery fetched %d times (via discovery: %t)", discovery, viaDiscovery)
			}
			mu.Unlock()

			tests := []struct{ name, raw, desc string }{
				{"unknown key", strangerRaw, "token signature not accepted"},
				{"alg none", noneRaw, "token signature not accepted"},
				{"HS256 keyed with the public key", hsRaw, "token signature not accepted"},
				{"expired", with("exp", now.Add(-time.Hour).Unix()), "token expired"},
				{"not yet valid", with("nbf", now.Add(time.Hour).Unix()), "token not valid yet"},
				{"wrong audience", with("aud", "billing-api"), "token audience not accepted"},
				{"wrong issuer", with("iss", "https://evil.example"), "token issuer not accepted"},
				{"no exp", with("exp", nil), "token lacks a required claim"},
				{"garbage", "abc.def", "malformed token"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					_, err := v.Verify(ctxTimeout(t), tt.raw)
					var be *bearer.Error
					if !errors.As(err, &be) {
						t.Fatalf("Verify = %v, want *bearer.Error", err)
					}
					if err.Error() != tt.desc {
						t.Errorf("description = %q, want %q", err.Error(), tt.desc)
					}
					if !errors.Is(err, oidc.ErrInvalidToken) {
						t.Errorf("cause %v is not ErrInvalidToken", errors.Unwrap(err))
					}
				})
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestIssuerDownAtStart(t *testing.T) {
	srv := oidctest.New(t)
	c := &clock{t: time.Now()}
	v := bearer.New(bearer.Config{Issuer: srv.Issuer, Audience: "api", Now: c.Now})
	t.Cleanup(v.Close)
	now := c.Now()
	raw := srv.Sign(jwt.MapClaims{"iss": srv.Issuer, "aud": "api", "sub": "s",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})

	_, err := v.Verify(ctxTimeout(t), raw)
	if !errors.Is(err, bearer.ErrUnavailable) {
		t.Fatalf("Verify with issuer down = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "connect") {
		t.Errorf("description leaks internals: %q", err)
	}

	srv.Start()
	c.Advance(oidc.DefaultRetryInterval + time.Second)
	if _, err := v.Verify(ctxTimeout(t), raw); err != nil {
		t.Fatalf("Verify after the issuer started: %v", err)
	}
	if err := v.Ready(ctxTimeout(t)); err != nil {
		t.Errorf("Ready = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := bearer.Config{JWKSURL: "relative/path"}.Validate()
	for _, want := range []string{"jwt issuer", "jwt audience", "jwt jwks url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v does not name %q", err, want)
		}
	}
}

// Many requests arriving together on a cold verifier fetch discovery once.
func TestConcurrentFirstUseFetchesOnce(t *testing.T) {
	srv := oidctest.Start(t)
	var mu sync.Mutex
	fetches := map[string]int{}
	v := bearer.New(bearer.Config{Issuer: srv.Issuer, Audience: "api",
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			fetches[r.URL.Path]++
			mu.Unlock()
			return http.DefaultTransport.RoundTrip(r)
		})}})
	t.Cleanup(v.Close)
	now := time.Now()
	raw := srv.Sign(jwt.MapClaims{"iss": srv.Issuer, "aud": "api", "sub": "s", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(ctxTimeout(t), raw); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Verify: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches["/.well-known/openid-configuration"] != 1 || fetches["/keys"] != 1 {
		t.Errorf("fetches = %v, want discovery and keys once each", fetches)
	}
}

// A token verified once is remembered until its exp, but a key-set rotation
// that drops its key refuses it at the next request, and a token whose kid
// the set never held is still refused.
func TestRememberedTokenFollowsTheKeySet(t *testing.T) {
	srv := oidctest.Start(t)
	now := time.Now()
	clk := &clock{t: now}
	claims := func(sub string, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": srv.Issuer, "aud": "orders-api", "sub": sub, "iat": now.Unix(), "exp": exp.Unix()}
	}
	v := bearer.New(bearer.Config{Issuer: srv.Issuer, Audience: "orders-api", JWKSURL: srv.JWKSURL(), Now: clk.Now})
	t.Cleanup(v.Close)

	old := srv.Sign(claims("svc-old", now.Add(time.Hour)))
	for range 3 {
		if id, err := v.Verify(ctxTimeout(t), old); err != nil || id.Subject != "svc-old" {
			t.Fatalf("Verify(old) = %+v, %v", id, err)
		}
	}
	// Past its exp a remembered token is refused like any other.
	short := srv.Sign(claims("svc-short", now.Add(time.Minute)))
	if _, err := v.Verify(ctxTimeout(t), short); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if _, err := v.Verify(ctxTimeout(t), short); err == nil || err.Error() != "token expired" {
		t.Fatalf("remembered token past its exp: %v, want token expired", err)
	}

	// The provider rotates twice: the old key leaves its set. A token with
	// the new kid makes the gateway fetch the set again.
	srv.RotateKey()
	srv.RotateKey()
	if _, err := v.Verify(ctxTimeout(t), srv.Sign(claims("svc-new", now.Add(time.Hour)))); err != nil {
		t.Fatalf("token under the new key: %v", err)
	}
	if _, err := v.Verify(ctxTimeout(t), old); err == nil {
		t.Fatal("a remembered token whose key left the key set is still accepted")
	}

	// A token under a key the set never held (a kid of its own) is refused.
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("svc-x", now.Add(time.Hour)))
	tok.Header["kid"] = "never-published"
	raw, err := tok.SignedString(foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctxTimeout(t), raw); err == nil {
		t.Fatal("token with an unknown kid accepted")
	}
}

// BenchmarkBearerVerify checks an API client's token as each of its
// requests does: a token verified before (remembered, the key set still
// holding its key) and the full RS256 verification a new token gets.
//
//	go test -run '^$' -bench BearerVerify -benchmem ./auth/bearer
func BenchmarkBearerVerify(b *testing.B) {
	srv := oidctest.Start(b)
	now := time.Now()
	claims := jwt.MapClaims{"iss": srv.Issuer, "aud": "orders-api", "sub": "svc-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"preferred_username": "robot", "groups": []string{"writers"}}
	raw := srv.Sign(claims)
	b.Run("remembered", func(b *testing.B) {
		v := bearer.New(bearer.Config{Issuer: srv.Issuer, Audience: "orders-api", JWKSURL: srv.JWKSURL()})
		b.Cleanup(v.Close)
		ctx := context.Background()
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("full-RS256", func(b *testing.B) {
		key := srv.PublicKey()
		keys := func(*jwt.Token) (any, error) { return key, nil }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := oidc.VerifyJWT(raw, keys, oidc.Expect{Issuer: srv.Issuer, Audience: "orders-api"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
