package gateway

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Return URLs come from clients (?rd=, the login form, Referer): whatever
// they say, the result is a path on the gateway's own origin.
func FuzzSameOriginPath(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil.example", "/\\evil", "https://gw.example/x", "https://evil.example/",
		"javascript:alert(1)", "/%2F%2Fevil", "///x", "\t/x", "/a/../../b", "https:evil", "//gw.example@evil/", "?x", "#frag"} {
		f.Add(s)
	}
	public, _ := url.Parse("https://gw.example")
	f.Fuzz(func(t *testing.T, raw string) {
		got := sameOriginPath(raw, public, "/fallback")
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n\t") {
			t.Fatalf("sameOriginPath(%q) = %q: not a plain path", raw, got)
		}
		u, err := public.Parse(got)
		if err != nil {
			t.Fatalf("sameOriginPath(%q) = %q does not parse: %v", raw, got, err)
		}
		if u.Scheme != public.Scheme || u.Host != public.Host {
			t.Fatalf("sameOriginPath(%q) = %q leads to %s://%s", raw, got, u.Scheme, u.Host)
		}
	})
}

// X-Forwarded-For comes from clients: it never makes a trusted proxy's
// address, or anything that is not an address, the client's.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7, 10.0.0.2", "garbage", "", ",,,", "::1, 2001:db8::1", "10.0.0.9"} {
		f.Add(s)
	}
	g := &Gateway{opts: Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	f.Fuzz(func(t *testing.T, xff string) {
		r := &http.Request{RemoteAddr: "10.1.2.3:4567", Header: http.Header{"X-Forwarded-For": {xff}}}
		got := g.clientAddr(r)
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("clientAddr with X-Forwarded-For %q = %q: not an address", xff, got)
		}
		if g.trustedAddr(a) && got != "10.1.2.3" {
			t.Fatalf("clientAddr with X-Forwarded-For %q = %q: a trusted proxy's address", xff, got)
		}
	})
}

func TestFormatForPeople(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Minute: "10 minutes", time.Hour: "1 hour", 90 * time.Second: "90 seconds", time.Minute: "1 minute"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{10 << 20: "10 MiB", 512 << 10: "512 KiB", 300: "300 bytes", 1 << 30: "1 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
