package e2e

import (
	"context"
	"net/http"
	"net/netip"
	"testing"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// trustLoopbackNginx names nginx, which reaches the gateway from
// 127.0.0.1, as the gateway's --trusted-proxy. 127.0.0.2 stays a client.
func trustLoopbackNginx(o *gateway.Options) {
	o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
}

// TestForwardAuthBelievesOnlyTheTrustedProxy: through nginx auth_request
// (trusted) each path is checked against its own route's policy; a client
// at another address that asks /.postern/auth directly, with the person's
// cookie and X-Forwarded-* naming the route it likes, is refused instead of
// being answered for the route of its choice.
func TestForwardAuthBelievesOnlyTheTrustedProxy(t *testing.T) {
	a := newApp(t)
	base, gw := startNginxStackWith(t, "authrequest.conf.tmpl", a, trustLoopbackNginx, func(o *gateway.Options) {
		admin := o.Routes[0]
		admin.PathPrefix = "/app/admin/"
		admin.Policy = auth.Policy{Groups: []string{"admins"}} // alice is not in it
		o.Routes = append([]gateway.Route{admin}, o.Routes...)
	})
	c := newClient(t, base)
	_, page := c.expect(http.StatusOK, http.MethodGet, "/.postern/login?rd=/app/hello", "", nil)
	c.logIn(page)

	// Through the trusted proxy, each path gets its route's answer.
	c.expect(http.StatusOK, http.MethodGet, "/app/hello", "", nil)
	c.expect(http.StatusForbidden, http.MethodGet, "/app/admin/users", "", nil)

	// The same cookie from 127.0.0.2, straight to the gateway. (The jar
	// scopes cookies by host, so the session cookie goes along.)
	direct := c.At(gw).From("127.0.0.2")
	check := func(hdr ...string) int {
		t.Helper()
		resp, err := direct.Send(context.Background(), http.MethodGet, "/.postern/auth", "", nil, -1, hdr...)
		if err != nil {
			t.Fatal(err)
		}
		gatewaytest.ReadBody(t, resp)
		return resp.StatusCode
	}
	for _, forged := range [][]string{
		{"X-Forwarded-Uri", "/app/hello"},
		{"X-Original-URI", "/app/hello"},
		{"X-Forwarded-Host", "127.0.0.1", "X-Forwarded-Uri", "/app/hello", "X-Forwarded-Method", "GET"},
	} {
		if got := check(forged...); got != http.StatusForbidden {
			t.Errorf("direct check from 127.0.0.2 with forged %q: %d, want 403", forged, got)
		}
	}
	// The direct client is answered for the request it actually sent:
	// the gateway's own host at "/", where the admin route does not apply.
	if got := check(); got != http.StatusOK {
		t.Errorf("direct check without forwarding headers: %d, want 200 for its own request", got)
	}
}
