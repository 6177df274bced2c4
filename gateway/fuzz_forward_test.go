package gateway

import (
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// The forward-auth headers come from whoever calls /.postern/auth: only a
// trusted proxy's are believed; from anyone else they are refused, never
// used to pick another route's policy.
func FuzzForwardedTarget(f *testing.F) {
	f.Add("app.example", "/admin?x=1", "POST", true)
	f.Add("app.example", "/admin", "get", false)
	f.Add("", "", "", false)
	f.Add("evil.example:443", "//x/../y", "DELETE", true)
	f.Add("\x00", "?", "\r\n", true)
	g := &Gateway{opts: Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		metrics: newMetrics(), log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, host, uri, method string, fromProxy bool) {
		r := httptest.NewRequest("GET", "http://gw.example/.postern/auth", nil)
		r.RemoteAddr = "203.0.113.9:4567"
		if fromProxy {
			r.RemoteAddr = "10.1.2.3:4567"
		}
		sent := false
		for k, v := range map[string]string{"X-Forwarded-Host": host, "X-Forwarded-Uri": uri, "X-Forwarded-Method": method} {
			if v != "" {
				r.Header.Set(k, v)
				sent = true
			}
		}
		target, herr := g.forwardedTarget(r)
		switch {
		case !fromProxy && sent && herr == nil:
			t.Fatalf("X-Forwarded-* from a client that is not a trusted proxy was believed: %+v", target)
		case !fromProxy && herr == nil && (target.host != "gw.example" || target.path != "/"):
			t.Fatalf("a client's own request became %+v", target)
		case herr == nil && strings.Contains(target.path, "?"):
			t.Fatalf("path %q keeps a query", target.path)
		case herr != nil && herr.Status != 403:
			t.Fatalf("refusal with status %d, want 403", herr.Status)
		}
	})
}
