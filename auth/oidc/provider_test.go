package oidc_test

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/auth/oidc/oidctest"
)

func TestLoginReturnsIdentity(t *testing.T) {
	bob := oidctest.User{ID: "id-bob", Username: "bob", Password: "bob-pw",
		Email: "bob@example.com", EmailVerified: false}
	users := []oidctest.User{oidctest.Alice(), bob}
	for _, inIDToken := range []bool{false, true} {
		name := "claims-from-userinfo"
		if inIDToken {
			name = "claims-in-id-token"
		}
		t.Run(name, func(t *testing.T) {
			srv := oidctest.Start(t, oidctest.Options{Users: users, ClaimsInIDToken: inIDToken})
			f := newFixture(t, srv)

			code, verifier, nonce := f.login(t, "alice", "alice-password")
			id, tokens, err := f.p.Exchange(ctxTimeout(t), code, verifier, nonce)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			want := auth.Identity{User: "alice", Email: "alice@example.com",
				Groups: []string{"staff", "admins"}, Subject: "id-alice"}
			if !sameIdentity(id, want) {
				t.Errorf("identity = %+v, want %+v", id, want)
			}
			if tokens.AccessToken == "" || tokens.IDToken == "" || tokens.Expiry.IsZero() {
				t.Errorf("tokens incomplete: access %t id %t expiry %v",
					tokens.AccessToken != "", tokens.IDToken != "", tokens.Expiry)
			}
			userinfoCalls := f.http.count("/userinfo")
			if inIDToken && userinfoCalls != 0 {
				t.Errorf("userinfo called %d times though the ID token had every claim", userinfoCalls)
			}
			if !inIDToken && userinfoCalls != 1 {
				t.Errorf("userinfo called %d times, want 1", userinfoCalls)
			}

			// An unverified email is not passed on.
			code, verifier, nonce = f.login(t, "bob", "bob-pw")
			id, _, err = f.p.Exchange(ctxTimeout(t), code, verifier, nonce)
			if err != nil {
				t.Fatalf("Exchange bob: %v", err)
			}
			if id.User != "bob" || id.Email != "" || len(id.Groups) != 0 {
				t.Errorf("bob = %+v, want user bob without email or groups", id)
			}
		})
	}
}

func sameIdentity(a, b auth.Identity) bool {
	return a.User == b.User && a.Email == b.Email && a.Subject == b.Subject && slices.Equal(a.Groups, b.Groups)
}

func TestAuthCodeURLCarriesPKCEAndNonce(t *testing.T) {
	srv := oidctest.Start(t)
	f := newFixture(t, srv)
	raw, err := f.p.AuthCodeURL(ctxTimeout(t), "the-state", "the-nonce", "the-verifier-0123456789012345678901234567890")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("the-verifier-0123456789012345678901234567890"))
	q := u.Query()
	for k, want := range map[string]string{
		"state":                 "the-state",
		"nonce":                 "the-nonce",
		"code_challenge_method": "S256",
		"code_challenge":        base64.RawURLEncoding.EncodeToString(sum[:]),
		"client_id":             srv.ClientID,
		"redirect_uri":          srv.RedirectURL,
		"scope":                 "openid email profile",
		"response_type":         "code",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if u.Scheme+"://"+u.Host != srv.Issuer {
		t.Errorf("auth URL %s is not at the issuer %s", u.Redacted(), srv.Issuer)
	}
}

func TestExchangeRefusals(t *testing.T) {
	srv := oidctest.Start(t)
	tests := []struct {
		name    string
		mangle  func(f *fixture, code, verifier, nonce string) (string, string, string)
		wantErr error
		wantJWT error
	}{
		{"wrong PKCE verifier", func(f *fixture, c, v, n string) (string, string, string) {
			return c, v + "x", n
		}, oidc.ErrRejected, nil},
		{"wrong nonce", func(f *fixture, c, v, n string) (string, string, string) {
			return c, v, n + "x"
		}, oidc.ErrInvalidToken, nil},
		{"unknown code", func(f *fixture, c, v, n string) (string, string, string) {
			return "not-a-code", v, n
		}, oidc.ErrRejected, nil},
		{"expired id token", func(f *fixture, c, v, n string) (string, string, string) {
			f.clock.Advance(2 * time.Hour) // the provider's ID tokens live 1h
			return c, v, n
		}, oidc.ErrInvalidToken, jwt.ErrTokenExpired},
		{"id token from the future", func(f *fixture, c, v, n string) (string, string, string) {
			f.clock.Advance(-10 * time.Minute)
			return c, v, n
		}, oidc.ErrInvalidToken, jwt.ErrTokenUsedBeforeIssued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, srv)
			code, verifier, nonce := f.login(t, "alice", "alice-password")
			code, verifier, nonce = tt.mangle(f, code, verifier, nonce)
			id, _, err := f.p.Exchange(ctxTimeout(t), code, verifier, nonce)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Exchange error = %v, want %v (identity %+v)", err, tt.wantErr, id)
			}
			if tt.wantJWT != nil && !errors.Is(err, tt.wantJWT) {
				t.Errorf("error %v does not say %v", err, tt.wantJWT)
			}
		})
	}
}

func TestCodeCannotBeReused(t *testing.T) {
	srv := oidctest.Start(t)
	f := newFixture(t, srv)
	code, verifier, nonce := f.login(t, "alice", "alice-password")
	if _, _, err := f.p.Exchange(ctxTimeout(t), code, verifier, nonce); err != nil {
		t.Fatalf("first Exchange: %v", err)
	}
	if _, _, err := f.p.Exchange(ctxTimeout(t), code, verifier, nonce); !errors.Is(err, oidc.ErrRejected) {
		t.Fatalf("second Exchange error = %v, want ErrRejected", err)
	}
}

func TestWrongPasswordNeverReachesCallback(t *testing.T) {
	srv := oidctest.Start(t)
	f := newFixture(t, srv)
	authURL, err := f.p.AuthCodeURL(ctxTimeout(t), "s", "n", "v-0123456789012345678901234567890123456789")
	if err != nil {
		t.Fatal(err)
	}
	if back, err := srv.Login(ctxTimeout(t), nil, authURL, "alice", "wrong"); err == nil {
		t.Fatalf("login with a wrong password reached %s", back.Redacted())
	}
}

func TestRefresh(t *testing.T) {
	srv := oidctest.Start(t)
	f := newFixture(t, srv, "openid", "email", "profile", "offline_access")
	code, verifier, nonce := f.login(t, "alice", "alice-password")
	first, tokens, err := f.p.Exchange(ctxTimeout(t), code, verifier, nonce)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tokens.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	id, fresh, err := f.p.Refresh(ctxTimeout(t), tokens.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if !sameIdentity(id, first) {
		t.Errorf("identity after refresh = %+v, want %+v", id, first)
	}
	if fresh.AccessToken == "" || fresh.AccessToken == tokens.AccessToken {
		t.Error("refresh did not bring a new access token")
	}
	if fresh.RefreshToken == "" {
		t.Error("refresh lost the refresh token")
	}
	_, last, err := f.p.Refresh(ctxTimeout(t), fresh.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh with the rotated token: %v", err)
	}
	// The provider rotates refresh tokens: the old one is spent, and
	// presenting it again (reuse) revokes every token of the login.
	if _, _, err := f.p.Refresh(ctxTimeout(t), tokens.RefreshToken); !errors.Is(err, oidc.ErrRejected) {
		t.Errorf("Refresh with a spent token: error = %v, want ErrRejected", err)
	}
	if _, _, err := f.p.Refresh(ctxTimeout(t), last.RefreshToken); !errors.Is(err, oidc.ErrRejected) {
		t.Errorf("Refresh with the newest token after a reuse: error = %v, want ErrRejected (family revoked)", err)
	}
	if grants, reuses := srv.RefreshStats(); grants != 2 || reuses != 1 {
		t.Errorf("provider counted %d grants and %d reuses, want 2 and 1", grants, reuses)
	}
}

func TestProviderDownAtStart(t *testing.T) {
	srv := oidctest.New(t) // port reserved, nothing listening
	f := newFixture(t, srv)
	ctx := ctxTimeout(t)

	if err := f.p.Ready(ctx); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("Ready with provider down = %v, want ErrUnavailable", err)
	}
	if _, err := f.p.AuthCodeURL(ctx, "s", "n", "v"); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("AuthCodeURL with provider down = %v, want ErrUnavailable", err)
	}
	if _, ok := f.p.EndSessionURL("", ""); ok {
		t.Error("EndSessionURL known before discovery")
	}

	srv.Start()
	// Within the retry interval the provider is not asked again.
	before := f.http.all.Load()
	if err := f.p.Ready(ctx); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("Ready within retry interval = %v, want the remembered ErrUnavailable", err)
	}
	if n := f.http.all.Load() - before; n != 0 {
		t.Errorf("%d requests within the retry interval, want 0", n)
	}

	f.clock.Advance(oidc.DefaultRetryInterval + time.Second)
	if err := f.p.Ready(ctx); err != nil {
		t.Fatalf("Ready after the provider started: %v", err)
	}
	code, verifier, nonce := f.login(t, "alice", "alice-password")
	if _, _, err := f.p.Exchange(ctx, code, verifier, nonce); err != nil {
		t.Fatalf("Exchange after late start: %v", err)
	}
}

func TestEndSessionURL(t *testing.T) {
	srv := oidctest.Start(t)
	f := newFixture(t, srv)
	if err := f.p.Ready(ctxTimeout(t)); err != nil {
		t.Fatal(err)
	}
	raw, ok := f.p.EndSessionURL("the-id-token", "https://gw.example/bye")
	if !ok {
		t.Fatal("no end session URL from a provider that has one")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != srv.Issuer+"/end_session" {
		t.Errorf("end session endpoint = %s", got)
	}
	q := u.Query()
	if q.Get("id_token_hint") != "the-id-token" || q.Get("post_logout_redirect_uri") != "https://gw.example/bye" || q.Get("client_id") != srv.ClientID {
		t.Errorf("end session query = %v", q)
	}
}

func TestConfigValidate(t *testing.T) {
	err := oidc.Config{Issuer: "not a url"}.Validate()
	if err == nil {
		t.Fatal("Validate accepted an empty config")
	}
	for _, want := range []string{"oidc issuer", "oidc client id", "oidc redirect url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not name %q", err, want)
		}
	}
	ok := oidc.Config{Issuer: "https://id.example", ClientID: "c", RedirectURL: "https://gw/cb"}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}
