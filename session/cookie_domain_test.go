package session_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern/postern/session"
)

// TestCookieDomain: without a Domain the cookie is host-only; with one it
// carries Domain on responses to hosts within it (and only those), and over
// https it is __Secure-, since a cookie with a Domain cannot be __Host-.
func TestCookieDomain(t *testing.T) {
	setCookie := func(c *session.Cookies, host string) string {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		if err := c.Save(rec, r, load(c, nil)); err != nil {
			t.Fatal(err)
		}
		return rec.Header().Get("Set-Cookie")
	}
	hostOnly := newCookies(t, session.CookieOptions{})
	if h := setCookie(hostOnly, "shop.example.com"); strings.Contains(h, "Domain") {
		t.Errorf("default cookie: %q, want host-only", h)
	}
	shared := newCookies(t, session.CookieOptions{Domain: ".Example.com"})
	for host, want := range map[string]bool{
		"shop.example.com": true, "example.com:8443": true, "a.b.example.com": true,
		"evilexample.com": false, "example.com.evil.test": false, "127.0.0.1": false,
	} {
		if got := strings.Contains(setCookie(shared, host), "Domain=example.com"); got != want {
			t.Errorf("cookie domain example.com, host %s: Domain set %v, want %v", host, got, want)
		}
	}
	secure := newCookies(t, session.CookieOptions{Domain: "example.com", Secure: true})
	if h := setCookie(secure, "shop.example.com"); !strings.HasPrefix(h, "__Secure-postern=") || !strings.Contains(h, "Secure") {
		t.Errorf("https with a domain: %q, want __Secure-postern", h)
	}
}
