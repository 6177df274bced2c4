package gateway_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

const (
	attackerUser     = "mallory"
	attackerPassword = "mallory's own password"
)

// newTwoUserEnv is a gateway with two local users: the person (alice) and
// an attacker who has an account of her own (mallory).
func newTwoUserEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	e.parts = func(p *gateway.Parts, _ *gateway.Options) {
		lines := append(gatewaytest.HtpasswdLine(t, testUser, testPassword), '\n')
		lines = append(lines, gatewaytest.HtpasswdLine(t, attackerUser, attackerPassword)...)
		users, err := auth.ParseHtpasswd("test", lines)
		if err != nil {
			t.Fatal(err)
		}
		p.Passwords = users
	}
	e.start()
	return e
}

// plant copies from's cookies for the gateway into to's jar, as an
// attacker who can set cookies for the site (a sibling subdomain, plain
// http) plants a cookie she got from the gateway herself.
func plant(t *testing.T, e *env, from, to *gatewaytest.Browser) {
	t.Helper()
	u, _ := url.Parse(e.gw.URL)
	cs := from.Client.Jar.Cookies(u)
	if len(cs) == 0 {
		t.Fatal("the attacker got no cookie to plant")
	}
	to.Client.Jar.SetCookies(u, cs)
}

// TestPlantedBrowserIDGivesNothing: an attacker plants a pre-login cookie
// (she knows its browser id) in the person's browser. The person keeps two
// submissions and logs in. The browser id changes at that login, so the
// attacker's copy of the old cookie neither shows the person's answer nor
// can complete the person's other kept submission under the attacker's own
// login; the person's own submissions are both replayed once, as alice.
func TestPlantedBrowserIDGivesNothing(t *testing.T) {
	e := newTwoUserEnv(t)
	attacker, victim := e.browser(), e.browser()
	attackerPage := gatewaytest.ExpectStatus(t, attacker.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	plant(t, e, attacker, victim)

	f1 := victim.SubmitWhileLoggedOut(http.MethodPost, "/orders", "application/x-www-form-urlencoded", []byte("item=tea"))
	f2 := victim.SubmitWhileLoggedOut(http.MethodPost, "/notes", "application/x-www-form-urlencoded", []byte("note=private"))
	if f1.Get("csrf") != gatewaytest.HiddenFields(attackerPage).Get("csrf") {
		t.Fatal("the planted cookie was not used by the victim's browser (the test would prove nothing)")
	}
	login := victim.Login(f1, testUser, testPassword)
	gatewaytest.ReadBody(t, login)
	if login.StatusCode != http.StatusSeeOther {
		t.Fatalf("victim's login: status %d, want 303", login.StatusCode)
	}

	// The attacker's copy of the old cookie does not see the answer waiting
	// at /orders.
	if page := gatewaytest.ReadBody(t, attacker.Do(http.MethodGet, "/orders", "", nil)); strings.Contains(page, "POST /orders") {
		t.Fatalf("the attacker's copy of the old cookie saw the victim's answer:\n%.400s", page)
	}
	// Nor can the attacker complete the victim's other kept submission
	// (even knowing its id) by logging in as herself.
	steal := url.Values{"csrf": {f2.Get("csrf")}, "stash": {f2.Get("stash")}, "rd": {"/notes"}}
	resp := attacker.Login(steal, attackerUser, attackerPassword)
	body := gatewaytest.ReadBody(t, resp)
	if resp.StatusCode == http.StatusSeeOther {
		body = gatewaytest.ReadBody(t, attacker.Do(http.MethodGet, resp.Header.Get("Location"), "", nil))
	}
	for _, s := range e.up.Submissions() {
		if s.Header.Get("X-Forwarded-User") != testUser {
			t.Fatalf("a submission of the victim reached the app as %q (%s %s)", s.Header.Get("X-Forwarded-User"), s.Method, s.URI)
		}
	}
	if strings.Contains(body, "note=private") || strings.Contains(body, "POST /notes") {
		t.Fatalf("the attacker saw the victim's submission:\n%.400s", body)
	}

	// The person sees her answer, and her second tab's submission is still
	// hers: it is sent once, as alice.
	if page := victim.Follow(login, http.StatusOK); !strings.Contains(page, "POST /orders user=alice replayed=true") {
		t.Fatalf("victim's answer:\n%.400s", page)
	}
	page := gatewaytest.ExpectStatus(t, victim.Do(http.MethodGet, "/.postern/login?stash="+f2.Get("stash")+"&rd=%2Fnotes", "", nil), http.StatusOK)
	cont := victim.Do(http.MethodPost, "/.postern/resume", "application/x-www-form-urlencoded", []byte(gatewaytest.HiddenFields(page).Encode()))
	if page := victim.Follow(cont, http.StatusOK); !strings.Contains(page, "POST /notes user=alice replayed=true") {
		t.Fatalf("victim's second tab:\n%.400s", page)
	}
	got := e.up.Submissions()
	if len(got) != 2 || !bytes.Equal(got[0].Body, []byte("item=tea")) || !bytes.Equal(got[1].Body, []byte("note=private")) {
		t.Fatalf("the app got %d submissions, want the victim's two, once each: %+v", len(got), got)
	}
}

// TestTabsKeepSubmissionsAcrossLogin: three tabs of one browser keep a
// submission each; the person logs in in the first. The second tab's login
// form (still open, with the CSRF token it had) and the third tab's
// "continue" both still work after the browser id changed: every
// submission is replayed exactly once.
func TestTabsKeepSubmissionsAcrossLogin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	tabs := []url.Values{
		b.SubmitWhileLoggedOut(http.MethodPost, "/one", "text/plain", []byte("first")),
		b.SubmitWhileLoggedOut(http.MethodPost, "/two", "text/plain", []byte("second")),
		b.SubmitWhileLoggedOut(http.MethodPost, "/three", "text/plain", []byte("third")),
	}
	if page := b.Follow(b.Login(tabs[0], testUser, testPassword), http.StatusOK); !strings.Contains(page, "POST /one user=alice") {
		t.Fatalf("tab 1:\n%.400s", page)
	}
	if page := b.Follow(b.Login(tabs[1], testUser, testPassword), http.StatusOK); !strings.Contains(page, "POST /two user=alice") {
		t.Fatalf("tab 2, logging in again on its open login page:\n%.400s", page)
	}
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login?stash="+tabs[2].Get("stash")+"&rd=%2Fthree", "", nil), http.StatusOK)
	cont := b.Do(http.MethodPost, "/.postern/resume", "application/x-www-form-urlencoded", []byte(gatewaytest.HiddenFields(page).Encode()))
	if page := b.Follow(cont, http.StatusOK); !strings.Contains(page, "POST /three user=alice") {
		t.Fatalf("tab 3, continue:\n%.400s", page)
	}
	got := e.up.Submissions()
	if len(got) != 3 {
		t.Fatalf("the app got %d submissions, want 3 (one per tab)", len(got))
	}
	for i, want := range []string{"first", "second", "third"} {
		if string(got[i].Body) != want {
			t.Errorf("submission %d: %q, want %q", i, got[i].Body, want)
		}
	}
}
