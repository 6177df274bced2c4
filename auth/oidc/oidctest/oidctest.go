// Package oidctest runs a real OpenID Connect provider (zitadel/oidc's op
// package with its example in-memory storage) on 127.0.0.1 for tests, with
// a client registered for postern, users who log in with a password form,
// and hooks to stop, restart and rotate its signing key.
//
// It is for tests only; nothing outside _test files and test helpers should
// import it.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is a person who can log in at the test provider.
type User struct {
	ID            string // becomes sub
	Username      string // becomes preferred_username
	Password      string
	Email         string
	EmailVerified bool
	Groups        []string // sent in the "groups" claim
}

// Alice is the default user.
func Alice() User {
	return User{ID: "id-alice", Username: "alice", Password: "alice-password",
		Email: "alice@example.com", EmailVerified: true, Groups: []string{"staff", "admins"}}
}

// Options shape the provider. The zero value gives one user (Alice) and
// claims only at the userinfo endpoint.
type Options struct {
	Users []User
	// ClaimsInIDToken puts profile, email and groups claims in the ID token
	// too (as Keycloak does). By default, like zitadel and the OIDC spec
	// when an access token is issued, they are only at the userinfo endpoint.
	ClaimsInIDToken bool
	// RedirectURL is the client's registered callback; a dummy if empty.
	// Login stops at the redirect to it and never contacts it.
	RedirectURL string
}

// Server is a running (or stopped) test provider.
type Server struct {
	Issuer       string // http://127.0.0.1:PORT
	ClientID     string
	ClientSecret string
	RedirectURL  string

	t       testing.TB
	addr    string
	handler http.Handler
	store   *store

	mu  sync.Mutex
	srv *http.Server
}

// Start creates a provider and starts serving it; it stops at the end of
// the test.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	s := New(t, opts...)
	s.Start()
	return s
}

// New creates a provider on a reserved 127.0.0.1 port without serving it,
// so a test can see a client start while the provider is down, then Start.
func New(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if len(o.Users) == 0 {
		o.Users = []User{Alice()}
	}
	if o.RedirectURL == "" {
		o.RedirectURL = "http://127.0.0.1:1/.postern/callback"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("oidctest: reserve port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()

	s := &Server{
		Issuer:       "http://" + addr,
		ClientID:     "postern",
		ClientSecret: rand.Text(),
		RedirectURL:  o.RedirectURL,
		t:            t,
		addr:         addr,
	}
	users := users{byID: map[string]User{}}
	for _, u := range o.Users {
		users.byID[u.ID] = u
	}
	client := storage.WebClient(s.ClientID, s.ClientSecret, o.RedirectURL)
	s.store = &store{
		Storage:         storage.NewStorageWithClients(users, map[string]*storage.Client{s.ClientID: client}),
		users:           users,
		claimsInIDToken: o.ClaimsInIDToken,
		rotation:        newRotation(),
	}
	s.store.rotate()

	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             cryptoKey,
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
	}, s.store, op.StaticIssuer(s.Issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatalf("oidctest: new provider: %v", err)
	}
	interceptor := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	callback := op.AuthCallbackURL(provider)
	mux := http.NewServeMux()
	mux.Handle("POST /login/username", interceptor.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		if err := s.store.CheckUsernamePassword(r.FormValue("username"), r.FormValue("password"), id); err != nil {
			http.Error(w, "login failed", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.HandleFunc("GET /login/username", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<form method="post"><input type="hidden" name="id" value="%s">`+
			`<input name="username"><input name="password" type="password"></form>`,
			html.EscapeString(r.FormValue("authRequestID")))
	})
	mux.Handle("/", provider)
	s.handler = mux
	t.Cleanup(s.Stop)
	return s
}

// Start serves the provider on its address; after Stop it starts again on
// the same address with the same keys, users and sessions.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	var l net.Listener
	var err error
	// The port was free when reserved; a just-closed listener may need a
	// moment before it can be bound again.
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("oidctest: listen %s: %v", s.addr, err)
	}
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(l) //nolint:errcheck // ends with Close in Stop
}

// Stop closes the listener and every connection; Start serves again.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// JWKSURL is where the provider publishes its keys.
func (s *Server) JWKSURL() string { return s.Issuer + "/keys" }

// RotateKey makes a fresh signing key current; the previous one stays
// published, as providers do during rotation.
func (s *Server) RotateKey() { s.store.rotate() }

// PublicKey is the current signing key's public half.
func (s *Server) PublicKey() *rsa.PublicKey { return &s.store.current().key.PublicKey }

// Sign signs claims with the provider's current key (RS256, with its kid),
// for tests that need a token with chosen claims that the provider's JWKS
// vouches for.
func (s *Server) Sign(claims jwt.MapClaims) string {
	s.t.Helper()
	k := s.store.current()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = k.id
	raw, err := tok.SignedString(k.key)
	if err != nil {
		s.t.Fatalf("oidctest: sign: %v", err)
	}
	return raw
}

// Login plays the browser: it follows authURL through the provider's
// password form as username and returns the URL the provider redirects to
// at the client's RedirectURL (holding code and state). client must not
// follow redirects on its own; nil means a fresh such client.
func (s *Server) Login(ctx context.Context, client *http.Client, authURL, username, password string) (*url.URL, error) {
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	next, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("auth url: %w", err)
	}
	for hop := 0; hop < 10; hop++ {
		if strings.HasPrefix(next.String(), s.RedirectURL) {
			return next, nil
		}
		var req *http.Request
		if next.Path == "/login/username" && next.Query().Get("authRequestID") != "" {
			form := url.Values{"id": {next.Query().Get("authRequestID")}, "username": {username}, "password": {password}}
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, next.String(), strings.NewReader(form.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		}
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			return nil, fmt.Errorf("login: %s %s: status %d: %s", req.Method, next.Path, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		if next, err = next.Parse(loc); err != nil {
			return nil, fmt.Errorf("login: bad redirect %q: %w", loc, err)
		}
	}
	return nil, errors.New("login: too many redirects")
}

// users is the example storage's UserStore over our User list.
type users struct{ byID map[string]User }

func (u users) GetUserByID(id string) *storage.User {
	x, ok := u.byID[id]
	if !ok {
		return nil
	}
	return &storage.User{ID: x.ID, Username: x.Username, Password: x.Password,
		FirstName: x.Username, Email: x.Email, EmailVerified: x.EmailVerified}
}

func (u users) GetUserByUsername(name string) *storage.User {
	for id, x := range u.byID {
		if x.Username == name {
			return u.GetUserByID(id)
		}
	}
	return nil
}

func (u users) ExampleClientID() string { return "service" }

// store is the example storage with our signing keys, groups, and
// optionally claims in the ID token.
type store struct {
	*storage.Storage
	users           users
	claimsInIDToken bool
	rotation        rotation

	keyMu sync.Mutex
	keys  []*signingKey // current last
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *store) rotate() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("oidctest: generate key: %v", err))
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	s.keys = append(s.keys, &signingKey{id: rand.Text(), key: key})
	if len(s.keys) > 2 {
		s.keys = s.keys[len(s.keys)-2:]
	}
}

func (s *store) current() *signingKey {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return s.keys[len(s.keys)-1]
}

func (s *store) SigningKey(context.Context) (op.SigningKey, error) { return s.current(), nil }

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	out := make([]op.Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, publicKey{k})
	}
	return out, nil
}

func (s *store) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil || !s.claimsInIDToken {
		return c, err
	}
	return assertingClient{c}, nil
}

// assertingClient asks the provider to put userinfo claims in ID tokens.
type assertingClient struct{ op.Client }

func (assertingClient) IDTokenUserinfoClaimsAssertion() bool { return true }

func (s *store) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.addClaims(info, req.GetSubject(), scopes)
	return nil
}

func (s *store) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	if info.Subject != "" {
		subject = info.Subject
	}
	s.addClaims(info, subject, []string{oidc.ScopeProfile, oidc.ScopeEmail})
	return nil
}

// addClaims adds the groups claim, and an explicit email_verified false
// (which zitadel's UserInfo type would omit) so clients can be tested on it.
func (s *store) addClaims(info *oidc.UserInfo, subject string, scopes []string) {
	u, ok := s.users.byID[subject]
	if !ok {
		return
	}
	for _, sc := range scopes {
		switch {
		case sc == oidc.ScopeProfile && len(u.Groups) > 0:
			info.AppendClaims("groups", u.Groups)
		case sc == oidc.ScopeEmail && u.Email != "" && !u.EmailVerified:
			info.AppendClaims("email_verified", false)
		}
	}
}
