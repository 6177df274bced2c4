package gateway_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/postern/postern/auth/oidc/oidctest"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
)

// Two hosts on loopback: the public URL is http://127.0.0.1:PORT, and the
// shop's route is chosen by the host "localhost" on the same listener. A
// browser's cookies for the two are separate, as for apps.example.com and
// shop.example.com.

// hostsEnv adds a route for host "localhost" to its own upstream, in front
// of the env's catch-all one, and returns that shop upstream.
func hostsEnv(shop *gatewaytest.Upstream) func(o *gateway.Options) {
	return func(o *gateway.Options) {
		u, _ := url.Parse(shop.URL)
		o.Routes = append([]gateway.Route{{Host: "localhost", Upstream: u}}, o.Routes...)
	}
}

// shopBrowser is b on the shop's host.
func shopBrowser(e *env, b *gatewaytest.Browser) *gatewaytest.Browser {
	s := b.At(strings.Replace(e.gw.URL, "127.0.0.1", "localhost", 1))
	s.Origin = s.Base
	return s
}

// noDomain fails unless every cookie the response sets is host-only.
func noDomain(t *testing.T, resp *http.Response) {
	t.Helper()
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(strings.ToLower(c), "domain=") {
			t.Errorf("Set-Cookie %q has a Domain: the session cookie must stay host-only", c)
		}
	}
}

// TestHostRouteOIDCHandoff: a POST on the shop's host without a session is
// kept, the login runs through the provider and its callback on the public
// URL's host, a one-time handoff sets the shop host's cookie, and the
// submission is replayed once there; the person lands on the result at the
// shop's host. A replayed handoff token is refused.
func TestHostRouteOIDCHandoff(t *testing.T) {
	shop := gatewaytest.NewUpstream(t)
	e, idp := newOIDCEnv(t, func(_ *gateway.Parts, o *gateway.Options, _ *oidctest.Server) { hostsEnv(shop)(o) })
	b := e.browser()
	s := shopBrowser(e, b)

	resp := s.Do(http.MethodPost, "/checkout?cart=7", "application/x-www-form-urlencoded", []byte("item=tea&qty=3"))
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "/.postern/login?") {
		t.Fatalf("POST on the shop host: %d %q, want a 307 into the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The 307 is followed on the shop's host (and the login's 303 to
	// itself as a GET); the login hops to the public host, which sends the
	// browser to the provider.
	hop := s.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "application/x-www-form-urlencoded", []byte("item=tea&qty=3"))
	gatewaytest.ReadBody(t, hop)
	signin := hop.Header.Get("Location")
	if hop.StatusCode != http.StatusSeeOther || !strings.HasPrefix(signin, e.gw.URL+"/.postern/signin?token=") {
		t.Fatalf("login on the shop host: %d %q, want a 303 to the public host's signin", hop.StatusCode, signin)
	}
	cb := loginAtProvider(t, idp, b.Do(http.MethodGet, signin, "", nil))
	if cb.Host != strings.TrimPrefix(e.gw.URL, "http://") {
		t.Fatalf("callback on %q, want the public host", cb.Host)
	}
	back := b.Do(http.MethodGet, cb.RequestURI(), "", nil)
	gatewaytest.ReadBody(t, back)
	handoff := back.Header.Get("Location")
	if back.StatusCode != http.StatusSeeOther || !strings.HasPrefix(handoff, s.Base+"/.postern/handoff?token=") {
		t.Fatalf("callback: %d %q, want a 303 to the shop host's handoff", back.StatusCode, handoff)
	}
	if n := len(shop.Requests()); n != 0 {
		t.Fatalf("the shop saw %d requests before the handoff", n)
	}

	done := s.Do(http.MethodGet, handoff, "", nil)
	noDomain(t, done)
	page := s.Follow(done, http.StatusOK)
	if done.Header.Get("Location") != "/checkout?cart=7" {
		t.Errorf("after the replay: 303 to %q, want the submitted URL on the shop host", done.Header.Get("Location"))
	}
	got := shop.Submissions()
	if len(got) != 1 || string(got[0].Body) != "item=tea&qty=3" || got[0].URI != "/checkout?cart=7" ||
		got[0].Header.Get("X-Forwarded-User") != "alice" || got[0].Header.Get("X-Postern-Replayed") != "true" {
		t.Fatalf("shop replays: %+v", got)
	}
	if !strings.Contains(page, "app answer #1: POST /checkout?cart=7") {
		t.Fatalf("result page on the shop host: %s", page)
	}
	if n := len(e.up.Requests()); n != 0 {
		t.Errorf("the other route's app saw %d requests", n)
	}

	// The shop host is logged in now; the same handoff again is refused.
	gatewaytest.ExpectStatus(t, s.Do(http.MethodGet, "/orders", "", nil), http.StatusOK)
	again := gatewaytest.ExpectStatus(t, s.Do(http.MethodGet, handoff, "", nil), http.StatusBadRequest)
	if !strings.Contains(again, "already used or has expired") {
		t.Errorf("replayed handoff: %s", again)
	}
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, signin, "", nil), http.StatusBadRequest)
	if n := len(shop.Submissions()); n != 1 {
		t.Fatalf("replaying the handoff sent the submission again: %d", n)
	}
}

// TestHostRouteHandoffRefusals: a handoff token is good only on its own
// host, in its own browser; a login cannot start on a host that is not a
// configured route's; and a person logged in on the public host is handed
// to a route host without another trip to the provider.
func TestHostRouteHandoffRefusals(t *testing.T) {
	shop := gatewaytest.NewUpstream(t)
	e, idp := newOIDCEnv(t, func(_ *gateway.Parts, o *gateway.Options, _ *oidctest.Server) { hostsEnv(shop)(o) })
	b := e.browser()
	s := shopBrowser(e, b)

	// A host that only the catch-all route answers cannot log in: with
	// nothing kept, the login moves to the public host; with a submission
	// kept there, a page says why and links to the public host.
	unknown := func(method, target string) *http.Response {
		req, _ := http.NewRequestWithContext(context.Background(), method, e.gw.URL+target, strings.NewReader("a=1"))
		req.Host = "unknown.test"
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := unknown(http.MethodGet, "/.postern/login?rd=/x")
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != e.gw.URL+"/.postern/login?rd=%2Fx" {
		t.Fatalf("login on an unknown host: %d %q, want a 303 to the public host's login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = unknown(http.MethodPost, "/form")
	gatewaytest.ReadBody(t, resp)
	loc := resp.Header.Get("Location")
	resp = unknown(http.MethodGet, loc)
	if body := gatewaytest.ReadBody(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not one of the hosts") ||
		!strings.Contains(body, `href="`+e.gw.URL+`/.postern/login`) {
		t.Fatalf("login with a submission kept on an unknown host (%s): %d %s", loc, resp.StatusCode, body)
	}

	// Log in through the shop host, up to the handoff.
	hop := s.Do(http.MethodGet, "/.postern/login?rd=/orders", "", nil)
	gatewaytest.ReadBody(t, hop)
	cb := loginAtProvider(t, idp, b.Do(http.MethodGet, hop.Header.Get("Location"), "", nil))
	back := b.Do(http.MethodGet, cb.RequestURI(), "", nil)
	gatewaytest.ReadBody(t, back)
	handoff, _ := url.Parse(back.Header.Get("Location"))

	// On the public host or an unknown host, the token is refused and not
	// used up.
	for _, host := range []string{"", "unknown.test"} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, e.gw.URL+handoff.RequestURI(), nil)
		req.Header.Set("Accept", "text/html")
		if host != "" {
			req.Host = host
		}
		resp, err := b.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := gatewaytest.ReadBody(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not one of the hosts") {
			t.Errorf("handoff on host %q: %d %s", host, resp.StatusCode, body)
		}
	}
	// Another browser on the right host: refused (and the token is spent).
	other := shopBrowser(e, e.browser())
	gatewaytest.ReadBody(t, other.Do(http.MethodGet, "/", "", nil)) // it has a cookie of its own
	gatewaytest.ExpectStatus(t, other.Do(http.MethodGet, handoff.String(), "", nil), http.StatusForbidden)
	gatewaytest.ExpectStatus(t, s.Do(http.MethodGet, handoff.String(), "", nil), http.StatusBadRequest)
	if resp := s.Do(http.MethodGet, "/orders", "", nil); resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("shop host after refused handoffs: %d, want still logged out", resp.StatusCode)
	}

	// The public host is logged in: the next login from the shop host
	// skips the provider.
	hop = s.Do(http.MethodGet, "/.postern/login?rd=/orders", "", nil)
	gatewaytest.ReadBody(t, hop)
	sso := b.Do(http.MethodGet, hop.Header.Get("Location"), "", nil)
	gatewaytest.ReadBody(t, sso)
	if sso.StatusCode != http.StatusSeeOther || !strings.HasPrefix(sso.Header.Get("Location"), s.Base+"/.postern/handoff?token=") {
		t.Fatalf("signin while logged in on the public host: %d %q, want a 303 straight back to the shop", sso.StatusCode, sso.Header.Get("Location"))
	}
	done := s.Do(http.MethodGet, sso.Header.Get("Location"), "", nil)
	gatewaytest.ReadBody(t, done)
	if done.StatusCode != http.StatusSeeOther || done.Header.Get("Location") != "/orders" {
		t.Fatalf("handoff: %d %q", done.StatusCode, done.Header.Get("Location"))
	}
	gatewaytest.ExpectStatus(t, s.Do(http.MethodGet, "/orders", "", nil), http.StatusOK)
	if got := shop.Requests(); len(got) != 1 || got[0].Header.Get("X-Forwarded-User") != "alice" {
		t.Fatalf("shop got %+v", got)
	}

	// The provider refuses a login from the shop host: the error page on
	// the public host links back to the shop's login, where the
	// submission waits.
	s2 := shopBrowser(e, e.browser())
	resp = s2.Do(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("a=1"))
	gatewaytest.ReadBody(t, resp)
	hop = s2.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "application/x-www-form-urlencoded", []byte("a=1"))
	gatewaytest.ReadBody(t, hop)
	toIdP := s2.Do(http.MethodGet, hop.Header.Get("Location"), "", nil)
	gatewaytest.ReadBody(t, toIdP)
	authURL, _ := url.Parse(toIdP.Header.Get("Location"))
	refused := gatewaytest.ExpectStatus(t, s2.Do(http.MethodGet, e.gw.URL+"/.postern/callback?error=access_denied&state="+authURL.Query().Get("state"), "", nil), http.StatusBadRequest)
	if !strings.Contains(refused, `href="`+s.Base+`/.postern/login?`) {
		t.Errorf("provider refusal page does not link to the shop host's login:\n%s", refused)
	}
}

// TestHostRouteLocalLogin: with local users, the login form is served on
// the route's own host, and the submission is replayed there once.
func TestHostRouteLocalLogin(t *testing.T) {
	shop := gatewaytest.NewUpstream(t)
	e := newEnv(t, hostsEnv(shop))
	b := e.browser()
	s := shopBrowser(e, b)
	f := s.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("item=tea"))
	done := s.Login(f, testUser, testPassword)
	noDomain(t, done)
	page := s.Follow(done, http.StatusOK)
	if got := shop.Submissions(); len(got) != 1 || string(got[0].Body) != "item=tea" || got[0].Header.Get("X-Forwarded-User") != testUser {
		t.Fatalf("shop replays: %+v", got)
	}
	if !strings.Contains(page, "app answer #1: POST /checkout") || len(e.up.Requests()) != 0 {
		t.Fatalf("result: %s (other app saw %d)", page, len(e.up.Requests()))
	}
	// Host-only: the public host is not logged in by it.
	if resp := b.Do(http.MethodGet, "/", "", nil); resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("public host: %d", resp.StatusCode)
	}
}

// TestCookieDomainSharesLogin: with a cookie domain, one login on a
// sibling host (shop.example.test) is a login on every host under the
// domain (apps.example.test), with no hop at all.
func TestCookieDomainSharesLogin(t *testing.T) {
	shop := gatewaytest.NewUpstream(t)
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	e.parts = func(p *gateway.Parts, o *gateway.Options) {
		c, err := session.NewCookies(session.CookieOptions{Name: "postern", Secrets: [][]byte{testSecret}, Domain: "example.test"})
		if err != nil {
			t.Fatal(err)
		}
		p.Cookies = c
		o.PublicURL.Host = strings.Replace(o.PublicURL.Host, "127.0.0.1", "apps.example.test", 1)
		u, _ := url.Parse(shop.URL)
		o.Routes = append([]gateway.Route{{Host: "shop.example.test", Upstream: u}, {Host: "apps.example.test", Upstream: o.Routes[0].Upstream}}, o.Routes...)
	}
	e.start()
	addr := e.addr
	base := func(host string) string { return "http://" + host + ":" + addr[strings.LastIndexByte(addr, ':')+1:] }
	s := gatewaytest.NewBrowser(t, base("shop.example.test"))
	s.Client.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}

	f := s.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("item=tea"))
	done := s.Login(f, testUser, testPassword)
	if c := done.Header.Values("Set-Cookie"); len(c) == 0 || !strings.Contains(strings.Join(c, "\n"), "Domain=example.test") {
		t.Fatalf("Set-Cookie %q, want Domain=example.test", c)
	}
	s.Follow(done, http.StatusOK)
	if got := shop.Submissions(); len(got) != 1 {
		t.Fatalf("shop replays: %d", len(got))
	}
	apps := s.At(base("apps.example.test"))
	gatewaytest.ExpectStatus(t, apps.Do(http.MethodGet, "/portal", "", nil), http.StatusOK)
	if got := e.up.Requests(); len(got) != 1 || got[0].Header.Get("X-Forwarded-User") != testUser {
		t.Fatalf("apps host: %+v, want one request as %s without a login", got, testUser)
	}
}
