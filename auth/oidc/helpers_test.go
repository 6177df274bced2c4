package oidc_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/auth/oidc/oidctest"
)

// clock is a settable clock for expiry and retry back-off.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// counter counts requests by path on their way to the provider.
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
	all  atomic.Int64
}

func newCounter() *counter { return &counter{next: http.DefaultTransport, n: map[string]int{}} }

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.URL.Path]++
	c.mu.Unlock()
	c.all.Add(1)
	return c.next.RoundTrip(r)
}

func (c *counter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

type fixture struct {
	srv   *oidctest.Server
	p     *oidc.Provider
	clock *clock
	http  *counter
}

func newFixture(t *testing.T, srv *oidctest.Server, scopes ...string) *fixture {
	t.Helper()
	f := &fixture{srv: srv, clock: newClock(), http: newCounter()}
	f.p = oidc.New(oidc.Config{
		Issuer:       srv.Issuer,
		ClientID:     srv.ClientID,
		ClientSecret: srv.ClientSecret,
		RedirectURL:  srv.RedirectURL,
		Scopes:       scopes,
		HTTPClient:   &http.Client{Transport: f.http, Timeout: 10 * time.Second},
		Now:          f.clock.Now,
	})
	t.Cleanup(f.p.Close)
	return f
}

// login runs the browser part of the flow and returns the code, with the
// verifier and nonce the gateway would have remembered.
func (f *fixture) login(t *testing.T, username, password string) (code, verifier, nonce string) {
	t.Helper()
	ctx := t.Context()
	verifier = oauth2.GenerateVerifier()
	nonce = "nonce-" + oauth2.GenerateVerifier()
	state := "state-" + oauth2.GenerateVerifier()
	authURL, err := f.p.AuthCodeURL(ctx, state, nonce, verifier)
	if err != nil {
		t.Fatalf("AuthCodeURL: %v", err)
	}
	back, err := f.srv.Login(ctx, nil, authURL, username, password)
	if err != nil {
		t.Fatalf("login at provider: %v", err)
	}
	if got := back.Query().Get("state"); got != state {
		t.Fatalf("state = %q, want %q", got, state)
	}
	code = back.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", back.Redacted())
	}
	return code, verifier, nonce
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
