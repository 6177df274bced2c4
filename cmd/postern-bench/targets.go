package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth/bearer"
	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/auth/oidc/oidctest"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
	"github.com/postern/postern/session/redisstore"
)

const (
	benchUser     = "bench"
	benchPassword = "bench-password"
	jwtIssuer     = "https://issuer.bench.invalid"
	jwtAudience   = "bench-api"
	upstreamBody  = "<!doctype html><title>app</title><p>hello from the app</p>\n"
)

// upstream is the small app every target proxies to. It counts the
// connections it accepts, so a target's new upstream connections per
// request can be reported.
type upstream struct {
	srv   *http.Server
	url   string
	conns atomic.Int64
}

func startUpstream() (*upstream, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	u := &upstream{url: "http://" + l.Addr().String()}
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The bench checks this header to know the answer came from
			// the app, with the identity postern vouched for.
			w.Header().Set("X-Bench-Upstream", "yes")
			w.Header().Set("X-Bench-User", r.Header.Get("X-Forwarded-User"))
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, upstreamBody)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = u.srv.Serve(l) }()
	return u, nil
}

// serve runs h on a fresh loopback listener and returns its URL.
func serve(r *runner, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	r.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String(), nil
}

// bareProxy is the limit: httputil.ReverseProxy with the same tuned
// transport as postern and pooled copy buffers (without them every request
// allocates 32 KiB, and the limit would be no limit), and nothing else.
func bareProxy(up *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport:  gateway.NewTransport(),
		BufferPool: &copyBuffers{p: sync.Pool{New: func() any { return new([32 << 10]byte) }}},
		// A load generator that stops mid-request cancels it: not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

// copyBuffers is a httputil.BufferPool of 32 KiB buffers.
type copyBuffers struct{ p sync.Pool }

func (c *copyBuffers) Get() []byte { return c.p.Get().(*[32 << 10]byte)[:] }

func (c *copyBuffers) Put(b []byte) {
	if len(b) == 32<<10 {
		c.p.Put((*[32 << 10]byte)(b))
	}
}

// jwtIssuerKeys is the bearer issuer the bench plays: an RSA key, its JWKS
// served on loopback, and tokens signed with it.
type jwtIssuerKeys struct {
	key  *rsa.PrivateKey
	kid  string
	jwks string // URL
}

func startJWTIssuer(r *runner) (*jwtIssuerKeys, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	is := &jwtIssuerKeys{key: key, kid: "bench-1"}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: is.kid, Algorithm: "RS256", Use: "sig"}}}
	doc, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	base, err := serve(r, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	if err != nil {
		return nil, err
	}
	is.jwks = base + "/jwks.json"
	return is, nil
}

func (is *jwtIssuerKeys) token(valid time.Duration) (string, error) {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "svc-1", "preferred_username": "svc",
		"email": "svc@example.com", "groups": []string{"api"},
		"iat": now.Unix(), "exp": now.Add(valid).Unix(),
	})
	tok.Header["kid"] = is.kid
	return tok.SignedString(is.key)
}

// postern is one gateway with every login method the bench measures: local
// users, OIDC against the in-process provider, and bearer JWTs.
type postern struct {
	url string
	idp *oidctest.Server
}

// gatewayConfig says how to build a bench gateway.
type gatewayConfig struct {
	upstream string
	store    string // "file" or a redis:// URL
	oidc     bool
	jwt      *jwtIssuerKeys
	stashTTL time.Duration // 0: the default
	log      *slog.Logger
}

func startPostern(r *runner, cfg gatewayConfig) (*postern, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + l.Addr().String()
	backend, err := openBackend(r, cfg.store)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	opts := gatewaytest.Options(r, base, cfg.upstream)
	if cfg.stashTTL > 0 {
		opts.StashTTL = cfg.stashTTL
	}
	// The access log is on by default in postern: measure with it.
	opts.AccessLog = true
	parts := gatewaytest.Parts(r, backend, [][]byte{secret}, "", benchUser, benchPassword)
	parts.Logger = cfg.log
	p := &postern{url: base}
	if cfg.oidc {
		redirect := base + "/.postern/callback"
		p.idp = oidctest.Start(r, oidctest.Options{RedirectURL: redirect})
		prov := oidc.New(oidc.Config{Issuer: p.idp.Issuer, ClientID: p.idp.ClientID,
			ClientSecret: p.idp.ClientSecret, RedirectURL: redirect}, oidc.WithLogger(cfg.log))
		r.Cleanup(prov.Close)
		parts.OIDC = prov
	}
	if cfg.jwt != nil {
		v := bearer.New(bearer.Config{Issuer: jwtIssuer, Audience: jwtAudience, JWKSURL: cfg.jwt.jwks})
		r.Cleanup(v.Close)
		parts.Bearer = v
	}
	gw, err := gateway.New(opts, parts)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	r.Cleanup(func() { _ = srv.Close() })
	return p, nil
}

func openBackend(r *runner, store string) (session.Backend, error) {
	if store == "" || store == "file" {
		b, err := filestore.Open(r.TempDir() + "/postern.db")
		if err != nil {
			return nil, fmt.Errorf("file store: %w", err)
		}
		r.Cleanup(func() { _ = b.Close() })
		return b, nil
	}
	b, err := redisstore.Open(context.Background(), store)
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	r.Cleanup(func() { _ = b.Close() })
	return b, nil
}

// localCookie logs in as the local user and returns the Cookie header.
func (p *postern) localCookie(r *runner) string {
	b := gatewaytest.NewBrowser(r, p.url)
	page := gatewaytest.ExpectStatus(r, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	gatewaytest.ReadBody(r, b.Login(gatewaytest.HiddenFields(page), benchUser, benchPassword))
	return cookieHeader(b, p.url)
}

// oidcCookie logs in for real at the in-process provider, through the
// gateway's login and callback, and returns the Cookie header.
func (p *postern) oidcCookie(r *runner) (string, error) {
	b := gatewaytest.NewBrowser(r, p.url)
	resp := b.Do(http.MethodGet, "/.postern/login?sso=1", "", nil)
	gatewaytest.ReadBody(r, resp)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, p.idp.Issuer) {
		return "", fmt.Errorf("oidc login: status %d, Location %q: not the provider", resp.StatusCode, loc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cb, err := p.idp.Login(ctx, nil, loc, "alice", oidctest.Alice().Password)
	if err != nil {
		return "", fmt.Errorf("oidc login: %w", err)
	}
	done := b.Do(http.MethodGet, cb.RequestURI(), "", nil)
	gatewaytest.ReadBody(r, done)
	if done.StatusCode != http.StatusSeeOther && done.StatusCode != http.StatusFound {
		return "", fmt.Errorf("oidc callback: status %d", done.StatusCode)
	}
	return cookieHeader(b, p.url), nil
}

func cookieHeader(b *gatewaytest.Browser, base string) string {
	u, _ := url.Parse(base)
	var parts []string
	for _, c := range b.Client.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// check makes one request as the load will and fails unless the answer is
// a 200 from the upstream (with the identity, for postern's targets).
func check(t target) error {
	req, err := http.NewRequest(http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	for k, v := range t.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: status %d, want 200: %.200s", t.name, resp.StatusCode, body)
	case resp.Header.Get("X-Bench-Upstream") != "yes" || string(body) != upstreamBody:
		return fmt.Errorf("%s: the answer did not come from the upstream", t.name)
	case t.user != "" && resp.Header.Get("X-Bench-User") != t.user:
		return fmt.Errorf("%s: upstream saw user %q, want %q", t.name, resp.Header.Get("X-Bench-User"), t.user)
	}
	return nil
}

var errNoWrk = errors.New("wrk not found")
