package gateway_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// TestPublicPaths: requests under a public prefix reach the app with no
// login and no identity (client-sent identity headers removed), and are
// never stashed; everything else still needs a login, including paths that
// only look as if they were under the prefix.
func TestPublicPaths(t *testing.T) {
	e := newEnv(t, func(o *gateway.Options) { o.Routes[0].PublicPaths = []string{"/webhooks", "/healthz"} })
	b := e.browser()

	for _, c := range []struct {
		method, path string
	}{
		{http.MethodPost, "/webhooks/stripe?sig=1"},
		{http.MethodPost, "/webhooks"},
		{http.MethodGet, "/healthz"},
	} {
		before := len(e.up.Requests())
		resp := b.Do(c.method, c.path, "application/json", []byte(`{"event":"paid"}`),
			"X-Forwarded-User", "mallory", "X-Postern-Replayed", "true", "X-Forwarded_Email", "m@evil.test")
		gatewaytest.ExpectStatus(t, resp, http.StatusOK)
		reqs := e.up.Requests()
		if len(reqs) != before+1 {
			t.Fatalf("%s %s: upstream got %d requests, want 1", c.method, c.path, len(reqs)-before)
		}
		got := reqs[len(reqs)-1]
		if got.URI != c.path {
			t.Errorf("%s %s: upstream saw %q", c.method, c.path, got.URI)
		}
		for _, h := range []string{"X-Forwarded-User", "X-Postern-Replayed", "X-Forwarded_Email", "X-Forwarded-Email"} {
			if v := got.Header.Get(h); v != "" {
				t.Errorf("%s %s: upstream got %s: %q; identity headers must be removed", c.method, c.path, h, v)
			}
		}
		if c.method == http.MethodPost && string(got.Body) != `{"event":"paid"}` {
			t.Errorf("%s %s: body %q", c.method, c.path, got.Body)
		}
	}

	// Not public: the login flow as always (a stash and a 307).
	for _, path := range []string{"/webhookshot", "/webhooks/../admin", "/webhooks/%2e%2e/admin", "/webhooks%2fadmin", "/admin"} {
		before := len(e.up.Requests())
		resp := b.Do(http.MethodPost, path, "application/x-www-form-urlencoded", []byte("a=1"))
		gatewaytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusTemporaryRedirect {
			t.Errorf("POST %s: status %d, want 307 into the login", path, resp.StatusCode)
		}
		if n := len(e.up.Requests()) - before; n != 0 {
			t.Errorf("POST %s: upstream got %d requests without a login", path, n)
		}
	}
}

// TestPublicRoute: a route marked public serves every request of its
// prefix without a login, while the other routes still ask for one.
func TestPublicRoute(t *testing.T) {
	open := gatewaytest.NewUpstream(t)
	e := newEnv(t, func(o *gateway.Options) {
		u, _ := url.Parse(open.URL)
		o.Routes = append([]gateway.Route{{PathPrefix: "/static", Upstream: u, Public: true}}, o.Routes...)
	})
	b := e.browser()
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/static/app.css", "", nil, "X-Forwarded-User", "mallory"), http.StatusOK)
	reqs := open.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("X-Forwarded-User") != "" {
		t.Fatalf("public route: upstream got %d requests (%v)", len(reqs), reqs)
	}
	resp := b.Do(http.MethodGet, "/app", "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect || len(e.up.Requests()) != 0 {
		t.Fatalf("GET /app on the protected route: %d, upstream got %d", resp.StatusCode, len(e.up.Requests()))
	}
}

// TestSkipAuthPreflight: with the setting on, a CORS preflight reaches the
// app without a login; other OPTIONS requests still need one, and without
// the setting preflights do too.
func TestSkipAuthPreflight(t *testing.T) {
	preflight := []string{"Origin", "https://spa.example", "Access-Control-Request-Method", "POST",
		"Accept", "*/*", "Sec-Fetch-Mode", "cors"}
	for _, skip := range []bool{true, false} {
		e := newEnv(t, func(o *gateway.Options) { o.SkipAuthPreflight = skip })
		e.up.SetAnswer(func(w http.ResponseWriter, _ *http.Request, _ gatewaytest.Request) {
			w.Header().Set("Access-Control-Allow-Origin", "https://spa.example")
			w.WriteHeader(http.StatusNoContent)
		})
		b := e.browser()
		resp := b.Do(http.MethodOptions, "/api/orders", "", nil, preflight...)
		gatewaytest.ReadBody(t, resp)
		if skip {
			if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://spa.example" {
				t.Errorf("skip on: preflight got %d (ACAO %q), want the app's 204", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
			if reqs := e.up.Requests(); len(reqs) != 1 || reqs[0].Method != http.MethodOptions || reqs[0].Header.Get("X-Forwarded-User") != "" {
				t.Errorf("skip on: upstream got %v", reqs)
			}
		} else if resp.StatusCode != http.StatusUnauthorized || len(e.up.Requests()) != 0 {
			t.Errorf("skip off: preflight got %d and reached the app %d times, want 401 and never", resp.StatusCode, len(e.up.Requests()))
		}
		// An OPTIONS that is not a preflight (no Access-Control-Request-Method)
		// always needs a login.
		before := len(e.up.Requests())
		resp = b.Do(http.MethodOptions, "/api/orders", "", nil, "Origin", "https://spa.example", "Accept", "*/*")
		gatewaytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || len(e.up.Requests()) != before {
			t.Errorf("skip %v: plain OPTIONS got %d, want 401 without reaching the app", skip, resp.StatusCode)
		}
	}
}
