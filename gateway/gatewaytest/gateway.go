package gatewaytest

import (
	"net/url"
	"testing"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/session"
)

// Options are the gateway settings tests start from: one route to
// upstream, the defaults of the command line for the stash, a one-hour
// session.
func Options(t testing.TB, publicURL, upstream string) gateway.Options {
	t.Helper()
	pub, err := url.Parse(publicURL)
	if err != nil {
		t.Fatal(err)
	}
	up, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	return gateway.Options{
		PublicURL:    pub,
		Routes:       []gateway.Route{{Upstream: up}},
		StashMaxBody: 10 << 20,
		StashTTL:     10 * time.Minute,
		SessionTTL:   time.Hour,
		// As the command line's default: every request through the
		// access log's writer.
		AccessLog: true,
	}
}

// Parts are the gateway's parts for tests: a store over backend sealed with
// secrets (newest first), the session cookie named cookieName under the
// same secrets, and one local user.
func Parts(t testing.TB, backend session.Backend, secrets [][]byte, cookieName, user, password string) gateway.Parts {
	t.Helper()
	sealer, err := session.NewSealer(secrets)
	if err != nil {
		t.Fatal(err)
	}
	cookies, err := session.NewCookies(session.CookieOptions{Name: cookieName, Secrets: secrets, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.ParseHtpasswd("test", HtpasswdLine(t, user, password))
	if err != nil {
		t.Fatal(err)
	}
	return gateway.Parts{Store: session.NewStore(backend, sealer), Cookies: cookies, Passwords: users}
}
