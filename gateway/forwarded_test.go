package gateway_test

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// Behind a trusted proxy the forwarding chain is kept and failed logins are
// counted per real client; from anyone else X-Forwarded-* are replaced.
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		wantXFF string
	}{
		{"untrusted peer", nil, "127.0.0.1"},
		{"trusted peer", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.7, 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *gateway.Options) { o.TrustedProxies = tc.trusted })
			b := e.browser()
			lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
			b.Follow(b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword), http.StatusOK)
			gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/x", "", nil, "X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https"), http.StatusOK)
			reqs := e.up.Requests()
			h := reqs[len(reqs)-1].Header
			if got := h.Get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For %q, want %q", got, tc.wantXFF)
			}
			wantProto := "http"
			if tc.trusted != nil {
				wantProto = "https"
			}
			if got := h.Get("X-Forwarded-Proto"); got != wantProto {
				t.Errorf("X-Forwarded-Proto %q, want %q", got, wantProto)
			}
		})
	}

	t.Run("login limit per real client", func(t *testing.T) {
		e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
		e.parts = func(p *gateway.Parts, o *gateway.Options) {
			o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			p.Limiter = auth.NewLoginLimiter(auth.LoginWindows{
				Address: p.Store.Window("a", time.Hour), Pair: p.Store.Window("p", time.Hour), User: p.Store.Window("u", time.Hour),
			}, auth.LoginLimits{PerAddress: 3, PerPair: 3, PerUser: 100, PerPairUnderAttack: 3}, time.Now)
		}
		e.start()
		try := func(client, user string) int {
			b := e.browser()
			lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
			f := gatewaytest.HiddenFields(lp)
			f.Set("username", user)
			f.Set("password", "wrong")
			resp := b.Do(http.MethodPost, "/.postern/login", "application/x-www-form-urlencoded", []byte(f.Encode()), "X-Forwarded-For", client)
			gatewaytest.ReadBody(t, resp)
			return resp.StatusCode
		}
		for i, user := range []string{"u1", "u2", "u3"} {
			if s := try("198.51.100.1", user); s != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i, s)
			}
		}
		if s := try("198.51.100.1", "u4"); s != http.StatusTooManyRequests {
			t.Fatalf("fourth failure from one client: %d, want 429", s)
		}
		// Another client behind the same proxy is not slowed down.
		if s := try("198.51.100.2", "u5"); s != http.StatusUnauthorized {
			t.Fatalf("another client: %d, want 401", s)
		}
	})
}
