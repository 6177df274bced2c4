package gateway_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/assertion"
	"github.com/postern/postern/auth/bearer"
	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/auth/oidc/oidctest"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// clock is a settable clock for the gateway.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newOIDCEnv is a gateway whose only login is a real OIDC provider (the
// zitadel/oidc op package), run in-process by auth/oidc/oidctest.
func newOIDCEnv(t *testing.T, mod func(p *gateway.Parts, o *gateway.Options, idp *oidctest.Server)) (*env, *oidctest.Server) {
	return newOIDCEnvScopes(t, nil, mod)
}

func newOIDCEnvScopes(t *testing.T, scopes []string, mod func(p *gateway.Parts, o *gateway.Options, idp *oidctest.Server)) (*env, *oidctest.Server) {
	t.Helper()
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	var idp *oidctest.Server
	e.parts = func(p *gateway.Parts, o *gateway.Options) {
		redirect := o.PublicURL.String() + "/.postern/callback"
		idp = oidctest.Start(t, oidctest.Options{RedirectURL: redirect})
		prov := oidc.New(oidc.Config{Issuer: idp.Issuer, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, RedirectURL: redirect, Scopes: scopes})
		t.Cleanup(prov.Close)
		p.Passwords, p.OIDC = nil, prov
		if mod != nil {
			mod(p, o, idp)
		}
	}
	e.start()
	return e, idp
}

// loginAtProvider plays the person at the identity provider: from the
// gateway's 303 to the provider, back to the callback URL.
func loginAtProvider(t *testing.T, idp *oidctest.Server, resp *http.Response) *url.URL {
	t.Helper()
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("hop to the identity provider: %d, want 303 (never 307: a credential POST must not be re-sent there)", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, idp.Issuer) {
		t.Fatalf("303 to %q, not the provider", loc)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cb, err := idp.Login(ctx, c, loc, "alice", oidctest.Alice().Password)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

func TestOIDCLoginReplaysSubmission(t *testing.T) {
	e, idp := newOIDCEnv(t, nil)
	b := e.browser()
	resp := b.Do(http.MethodPost, "/checkout?x=1", "application/x-www-form-urlencoded", []byte("item=tea&qty=3"))
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "/.postern/login?") {
		t.Fatalf("307 into postern's own login expected, got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The browser follows the 307 with the body to postern's login, which
	// answers with a 303 to the provider.
	cb := loginAtProvider(t, idp, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "application/x-www-form-urlencoded", []byte("item=tea&qty=3")))
	if n := len(e.up.Requests()); n != 0 {
		t.Fatalf("upstream saw %d requests before the callback", n)
	}
	done := b.Do(http.MethodGet, cb.RequestURI(), "", nil)
	page := b.Follow(done, http.StatusOK)
	got := e.up.Submissions()
	if len(got) != 1 || string(got[0].Body) != "item=tea&qty=3" || got[0].Query != "x=1" {
		t.Fatalf("replays: %+v", got)
	}
	if u := got[0].Header.Get("X-Forwarded-User"); u != "alice" {
		t.Errorf("X-Forwarded-User %q", u)
	}
	if em := got[0].Header.Get("X-Forwarded-Email"); em != "alice@example.com" {
		t.Errorf("X-Forwarded-Email %q", em)
	}
	if gr := got[0].Header.Get("X-Forwarded-Groups"); gr != "staff,admins" {
		t.Errorf("X-Forwarded-Groups %q", gr)
	}
	if !strings.Contains(page, "app answer #1: POST /checkout?x=1") {
		t.Fatalf("result page: %s", page)
	}
	// The same callback again (Back, or a replayed URL) does nothing.
	resp = b.Do(http.MethodGet, cb.RequestURI(), "", nil)
	gatewaytest.ExpectStatus(t, resp, http.StatusBadRequest)
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("callback reuse replayed again: %d", n)
	}
}

// Several tabs log in at once: each login has its own state, each stash is
// replayed once, whatever order the logins complete in.
func TestOIDCSeveralTabsAtOnce(t *testing.T) {
	e, idp := newOIDCEnv(t, nil)
	b := e.browser()
	var callbacks []*url.URL
	for _, body := range []string{"tab=1", "tab=2", "tab=3"} {
		resp := b.Do(http.MethodPost, "/form", "text/plain", []byte(body))
		gatewaytest.ReadBody(t, resp)
		callbacks = append(callbacks, loginAtProvider(t, idp, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "text/plain", []byte(body))))
	}
	for i := len(callbacks) - 1; i >= 0; i-- {
		b.Follow(b.Do(http.MethodGet, callbacks[i].RequestURI(), "", nil), http.StatusOK)
	}
	got := e.up.Submissions()
	if len(got) != 3 {
		t.Fatalf("%d replays, want 3", len(got))
	}
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Body)]++
	}
	if seen["tab=1"] != 1 || seen["tab=2"] != 1 || seen["tab=3"] != 1 {
		t.Fatalf("replays per tab: %v", seen)
	}
}

// Someone who logs in but is not allowed gets 403; their stash is
// discarded, never replayed.
func TestOIDCNotAllowedDiscardsStash(t *testing.T) {
	e, idp := newOIDCEnv(t, func(p *gateway.Parts, o *gateway.Options, _ *oidctest.Server) {
		o.Routes[0].Policy = auth.Policy{Domains: []string{"other.example"}}
	})
	b := e.browser()
	resp := b.Do(http.MethodPost, "/checkout", "text/plain", []byte("x"))
	gatewaytest.ReadBody(t, resp)
	cb := loginAtProvider(t, idp, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "text/plain", []byte("x")))
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, cb.RequestURI(), "", nil), http.StatusForbidden)
	if !strings.Contains(page, "discarded") {
		t.Errorf("403 page does not say the submission was discarded:\n%s", page)
	}
	if n := len(e.up.Requests()); n != 0 {
		t.Fatalf("upstream received %d requests", n)
	}
}

// The access token is refreshed before it expires, so a long working
// session is not bounced to the provider.
func TestOIDCRefreshesAccessToken(t *testing.T) {
	clk := &clock{t: time.Now()}
	e, idp := newOIDCEnvScopes(t, []string{"openid", "email", "profile", "offline_access"}, func(p *gateway.Parts, o *gateway.Options, _ *oidctest.Server) {
		p.Now = clk.Now
		o.PassAccessToken = true
		o.SessionTTL = 24 * time.Hour
	})
	b := e.browser()
	resp := b.Do(http.MethodGet, "/", "", nil)
	gatewaytest.ReadBody(t, resp)
	cb := loginAtProvider(t, idp, b.Do(http.MethodGet, resp.Header.Get("Location"), "", nil))
	gatewaytest.ReadBody(t, b.Do(http.MethodGet, cb.RequestURI(), "", nil))
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/one", "", nil), http.StatusOK)
	clk.Add(6 * time.Hour) // past the provider's access token lifetime
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/two", "", nil), http.StatusOK)
	reqs := e.up.Requests()
	first, second := reqs[len(reqs)-2].Header.Get("X-Forwarded-Access-Token"), reqs[len(reqs)-1].Header.Get("X-Forwarded-Access-Token")
	if first == "" || second == "" || first == second {
		t.Fatalf("access token not refreshed: before %q, after %q", first, second)
	}
	if u := reqs[len(reqs)-1].Header.Get("X-Forwarded-User"); u != "alice" {
		t.Fatalf("after refresh X-Forwarded-User %q", u)
	}
}

// Logout clears the session and performs RP-initiated logout at the
// provider.
func TestOIDCLogout(t *testing.T) {
	e, idp := newOIDCEnv(t, nil)
	b := e.browser()
	resp := b.Do(http.MethodGet, "/", "", nil)
	gatewaytest.ReadBody(t, resp)
	cb := loginAtProvider(t, idp, b.Do(http.MethodGet, resp.Header.Get("Location"), "", nil))
	gatewaytest.ReadBody(t, b.Do(http.MethodGet, cb.RequestURI(), "", nil))
	lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/logout", "", nil), http.StatusOK)
	out := b.Do(http.MethodPost, "/.postern/logout", "application/x-www-form-urlencoded", []byte(gatewaytest.HiddenFields(lp).Encode()))
	gatewaytest.ReadBody(t, out)
	if out.StatusCode != http.StatusSeeOther || !strings.HasPrefix(out.Header.Get("Location"), idp.Issuer) || !strings.Contains(out.Header.Get("Location"), "id_token_hint=") {
		t.Fatalf("logout: %d %q, want 303 to the provider's end_session_endpoint", out.StatusCode, out.Header.Get("Location"))
	}
	resp = b.Do(http.MethodGet, "/after", "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("after logout: %d, want 307 into login", resp.StatusCode)
	}
}

// API clients with a bearer JWT from the issuer are proxied with identity;
// missing or bad tokens get 401 JSON with a challenge; browsers still get
// the login.
func TestBearerJWTs(t *testing.T) {
	var idp *oidctest.Server
	e, idp := newOIDCEnv(t, func(p *gateway.Parts, o *gateway.Options, s *oidctest.Server) {
		v := bearer.New(bearer.Config{Issuer: s.Issuer, Audience: "orders-api"})
		t.Cleanup(v.Close)
		p.Bearer = v
	})
	now := time.Now()
	good := idp.Sign(jwtClaims(idp.Issuer, "orders-api", now.Add(time.Hour)))
	expired := idp.Sign(jwtClaims(idp.Issuer, "orders-api", now.Add(-time.Hour)))
	wrongAud := idp.Sign(jwtClaims(idp.Issuer, "billing", now.Add(time.Hour)))
	call := func(tok string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/api/orders", strings.NewReader(`{"n":1}`))
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	gatewaytest.ExpectStatus(t, call(good), http.StatusOK)
	got := e.up.Submissions()
	if len(got) != 1 || got[0].Header.Get("X-Forwarded-User") != "svc-robot" || got[0].Header.Get("X-Postern-Replayed") != "" {
		t.Fatalf("bearer request upstream: %+v", got)
	}
	for name, tok := range map[string]string{"missing": "", "expired": expired, "wrong audience": wrongAud, "garbage": "abc.def.ghi"} {
		resp := call(tok)
		body := gatewaytest.ExpectStatus(t, resp, http.StatusUnauthorized)
		var v map[string]string
		if json.Unmarshal([]byte(body), &v) != nil || v["error"] == "" {
			t.Errorf("%s: body %q is not JSON", name, body)
		}
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("refused tokens reached the upstream: %d", n)
	}
	b := e.browser()
	resp := b.Do(http.MethodGet, "/page", "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("browser page load: %d, want 307 into login", resp.StatusCode)
	}
}

func jwtClaims(iss, aud string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": iss, "aud": aud, "sub": "svc-1", "preferred_username": "svc-robot",
		"iat": exp.Add(-2 * time.Hour).Unix(), "exp": exp.Unix()}
}

// The upstream can verify who is calling from X-Postern-Assertion alone,
// with the keys at /.postern/jwks.json.
func TestSignedAssertion(t *testing.T) {
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	e.parts = func(p *gateway.Parts, o *gateway.Options) {
		s, err := assertion.NewSigner(o.PublicURL.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Assertion = s
	}
	e.start()
	cookie := e.loginCookie(t)
	req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/x", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.ExpectStatus(t, resp, http.StatusOK)
	raw := e.up.Requests()[0].Header.Get("X-Postern-Assertion")
	jwksResp, err := http.Get(e.gw.URL + "/.postern/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks := gatewaytest.ReadBody(t, jwksResp)
	kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(jwks))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(raw, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(e.up.URL), jwt.WithIssuer(e.opts.PublicURL.String()))
	if err != nil {
		t.Fatalf("assertion does not verify with the published keys: %v", err)
	}
	if sub, _ := tok.Claims.GetSubject(); sub != testUser {
		t.Fatalf("assertion subject %q", sub)
	}
}

// A callback with a state this browser never got (forged, or from another
// login) logs no one in and replays nothing.
func TestOIDCWrongStateRefused(t *testing.T) {
	e, idp := newOIDCEnv(t, nil)
	b := e.browser()
	resp := b.Do(http.MethodPost, "/checkout", "text/plain", []byte("x"))
	gatewaytest.ReadBody(t, resp)
	cb := loginAtProvider(t, idp, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "text/plain", []byte("x")))
	q := cb.Query()
	q.Set("state", "AAAAAAAAAAAAAAAAAAAAAA")
	cb.RawQuery = q.Encode()
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, cb.RequestURI(), "", nil), http.StatusBadRequest)
	// Another browser presenting this browser's real callback is refused too.
	q.Set("state", loginAtProviderState(t, idp, b))
	cb.RawQuery = q.Encode()
	other := e.browser()
	gatewaytest.ExpectStatus(t, other.Do(http.MethodGet, cb.RequestURI(), "", nil), http.StatusBadRequest)
	if n := len(e.up.Requests()); n != 0 {
		t.Fatalf("upstream received %d requests", n)
	}
}

// loginAtProviderState starts a login in b and returns the state the
// provider sends back.
func loginAtProviderState(t *testing.T, idp *oidctest.Server, b *gatewaytest.Browser) string {
	t.Helper()
	resp := b.Do(http.MethodGet, "/.postern/login", "", nil)
	return loginAtProvider(t, idp, resp).Query().Get("state")
}

// A provider that is down when the gateway starts: the gateway starts,
// reports not ready, and recovers by itself once the provider is up.
func TestOIDCProviderDownAtStart(t *testing.T) {
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	var idp *oidctest.Server
	e.parts = func(p *gateway.Parts, o *gateway.Options) {
		redirect := o.PublicURL.String() + "/.postern/callback"
		idp = oidctest.New(t, oidctest.Options{RedirectURL: redirect}) // not serving yet
		prov := oidc.New(oidc.Config{Issuer: idp.Issuer, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, RedirectURL: redirect},
			oidc.WithRetryInterval(50*time.Millisecond))
		t.Cleanup(prov.Close)
		p.Passwords, p.OIDC, p.Ready = nil, prov, prov.Ready
	}
	e.start()
	readyz := func() int {
		resp, err := http.Get(e.gw.URL + "/.postern/readyz")
		if err != nil {
			t.Fatal(err)
		}
		gatewaytest.ReadBody(t, resp)
		return resp.StatusCode
	}
	if s := readyz(); s != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the provider down: %d, want 503", s)
	}
	// A submission meanwhile is kept, and the login says the provider is
	// not answering instead of failing obscurely.
	b := e.browser()
	resp := b.Do(http.MethodPost, "/checkout", "text/plain", []byte("kept while down"))
	gatewaytest.ReadBody(t, resp)
	page := gatewaytest.ExpectStatus(t, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "text/plain", []byte("kept while down")), http.StatusServiceUnavailable)
	if !strings.Contains(page, "identity provider is not answering") {
		t.Fatalf("login page with the provider down:\n%s", page)
	}
	idp.Start()
	deadline := time.Now().Add(10 * time.Second)
	for readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("gateway did not become ready after the provider started")
		}
		time.Sleep(60 * time.Millisecond)
	}
	// The retry link of the error page completes the kept submission.
	login := formLink(t, page)
	cb := loginAtProvider(t, idp, b.Do(http.MethodGet, login, "", nil))
	b.Follow(b.Do(http.MethodGet, cb.RequestURI(), "", nil), http.StatusOK)
	if got := e.up.Submissions(); len(got) != 1 || string(got[0].Body) != "kept while down" {
		t.Fatalf("after recovery: %+v", got)
	}
}

// formLink returns the gateway login link of an error page.
func formLink(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, `href="/.postern/login`)
	if i < 0 {
		t.Fatalf("no login link on the page:\n%s", page)
	}
	rest := page[i+len(`href="`):]
	return html.UnescapeString(rest[:strings.IndexByte(rest, '"')])
}
