package gateway_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// A cross-site submission without a session is never stashed: 403 with a
// page that says why, and nothing reaches the upstream even after a login.
func TestCrossSiteSubmissionIsNotKept(t *testing.T) {
	cases := []struct {
		name string
		hdr  []string
	}{
		{"sec-fetch-site cross-site", []string{"Sec-Fetch-Site", "cross-site", "Origin", ""}},
		{"foreign origin", []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
		{"null origin", []string{"Sec-Fetch-Site", "", "Origin", "null"}},
		{"sibling subdomain", []string{"Sec-Fetch-Site", "same-site", "Origin", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			page := gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/transfer", "application/x-www-form-urlencoded", []byte("to=mallory&amount=1000"), tc.hdr...), http.StatusForbidden)
			if !strings.Contains(page, "another site") {
				t.Errorf("403 page does not say why:\n%s", page)
			}
			// Logging in afterwards sends nothing.
			lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
			b.Follow(b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword), http.StatusOK)
			if n := len(e.up.Submissions()); n != 0 {
				t.Fatalf("forged submission reached the upstream %d times", n)
			}
		})
	}
	t.Run("allowed when configured", func(t *testing.T) {
		e := newEnv(t, func(o *gateway.Options) { o.AllowCrossSiteStash = true })
		b := e.browser()
		resp := b.Do(http.MethodPost, "/x", "text/plain", []byte("a"), "Sec-Fetch-Site", "cross-site")
		gatewaytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("with --cross-site-stash allow: %d, want 307", resp.StatusCode)
		}
	})
}

func TestTooLargeToKeep(t *testing.T) {
	e := newEnv(t, func(o *gateway.Options) { o.StashMaxBody = 1000 })
	b := e.browser()
	body := bytes.Repeat([]byte("x"), 1001)
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/upload", "application/octet-stream", body), http.StatusRequestEntityTooLarge)
	if !strings.Contains(page, "too large to keep") {
		t.Errorf("413 page does not say the submission was too large to keep:\n%s", page)
	}
	// Without Content-Length (chunked), the limit holds while streaming.
	req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/upload", struct{ *bytes.Reader }{bytes.NewReader(body)})
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.ExpectStatus(t, resp, http.StatusRequestEntityTooLarge)
	// Exactly at the limit is kept.
	b.SubmitWhileLoggedOut(http.MethodPost, "/upload", "application/octet-stream", body[:1000])
}

// Tampered or foreign cookies are treated as no session.
func TestTamperedCookieIsNoSession(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	b.Follow(b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword), http.StatusOK)
	u, _ := url.Parse(e.gw.URL)
	var value string
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == "postern" {
			value = c.Value
		}
	}
	if value == "" {
		t.Fatal("no session cookie after login")
	}
	flipped := []byte(value)
	flipped[len(flipped)/2] ^= 1
	for name, v := range map[string]string{"tampered": string(flipped), "foreign": "MTcwMDAwMDAwMHxmb3JlaWdufGJhZA==", "empty": ""} {
		t.Run(name, func(t *testing.T) {
			c := &http.Client{CheckRedirect: b.Client.CheckRedirect}
			req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/checkout", strings.NewReader("a=1"))
			req.Header.Set("Accept", "text/html")
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "postern", Value: v})
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			gatewaytest.ReadBody(t, resp)
			if resp.StatusCode != http.StatusTemporaryRedirect {
				t.Fatalf("%s cookie: %d, want 307 into login", name, resp.StatusCode)
			}
		})
	}
	if n := len(e.up.Submissions()); n != 0 {
		t.Fatalf("upstream received %d submissions", n)
	}
}

// Client-sent identity headers are removed on every path.
func TestIdentityHeadersCannotBeForged(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	forged := []string{"X-Forwarded-User", "admin", "X-Forwarded-Email", "admin@corp", "X-Forwarded-Groups", "admins", "X-Postern-Replayed", "true", "X-Postern-Assertion", "forged"}
	// Stashed and replayed.
	resp := b.Do(http.MethodPost, "/a", "text/plain", []byte("1"), forged...)
	gatewaytest.ReadBody(t, resp)
	page := gatewaytest.ExpectStatus(t, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "text/plain", []byte("1"), forged...), http.StatusOK)
	b.Follow(b.Login(gatewaytest.HiddenFields(page), testUser, testPassword), http.StatusOK)
	// Proxied with a session.
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/b", "", nil, forged...), http.StatusOK)
	for _, r := range e.up.Requests() {
		if r.Header.Get("X-Forwarded-User") != testUser || r.Header.Get("X-Forwarded-Email") != "" || r.Header.Get("X-Forwarded-Groups") != "" || r.Header.Get("X-Postern-Assertion") != "" {
			t.Errorf("%s %s: forged identity reached the upstream: %v", r.Method, r.Path, r.Header)
		}
		if r.Method == http.MethodGet && r.Header.Get("X-Postern-Replayed") != "" {
			t.Errorf("GET %s carries X-Postern-Replayed", r.Path)
		}
	}
}

// API clients get 401 JSON, never a redirect.
func TestAPIClientsGet401(t *testing.T) {
	e := newEnv(t)
	cases := map[string][]string{
		"json accept":     {"Accept", "application/json"},
		"curl":            {"Accept", "*/*"},
		"xhr":             {"X-Requested-With", "XMLHttpRequest"},
		"fetch cors mode": {"Sec-Fetch-Mode", "cors"},
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/api/orders", strings.NewReader(`{}`))
			req.Header.Set("Accept", "text/html")
			req.Header.Set(hdr[0], hdr[1])
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body := gatewaytest.ExpectStatus(t, resp, http.StatusUnauthorized)
			var v map[string]string
			if err := json.Unmarshal([]byte(body), &v); err != nil || v["error"] != "unauthenticated" {
				t.Errorf("401 body is not the JSON error: %q", body)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// Return URLs are same-origin only.
func TestReturnURLsStayOnTheGateway(t *testing.T) {
	e := newEnv(t)
	for _, rd := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		b := e.browser()
		lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login?rd="+url.QueryEscape(rd), "", nil), http.StatusOK)
		f := gatewaytest.HiddenFields(lp)
		f.Set("rd", rd) // a forged form field is checked again on POST
		resp := b.Login(f, testUser, testPassword)
		gatewaytest.ReadBody(t, resp)
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("rd=%q: redirected to %q, want /", rd, loc)
		}
	}
}

// An upstream that refuses the connection during replay keeps the stash and
// offers a retry, which replays it once when the upstream is back.
func TestUpstreamRefusedKeepsStash(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("order=7"))
	addr := e.up.Listener.Addr().String()
	e.up.Close()
	page := gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusBadGateway)
	if !strings.Contains(page, "Try again") {
		t.Fatalf("no retry offered:\n%s", page)
	}
	retry := gatewaytest.HiddenFields(page)
	// The upstream comes back on the same address.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	back := gatewaytest.NewUpstream(t)
	back.Close()
	back2 := &http.Server{Handler: back.Config.Handler}
	go back2.Serve(l)
	t.Cleanup(func() { back2.Close() })
	b.Follow(b.Do(http.MethodPost, "/.postern/resume", "application/x-www-form-urlencoded", []byte(retry.Encode())), http.StatusOK)
	if got := back.Submissions(); len(got) != 1 || string(got[0].Body) != "order=7" {
		t.Fatalf("after retry: %d submissions", len(got))
	}
	// A second retry does not send it again.
	resp := b.Do(http.MethodPost, "/.postern/resume", "application/x-www-form-urlencoded", []byte(retry.Encode()))
	gatewaytest.ReadBody(t, resp)
	if got := back.Submissions(); len(got) != 1 {
		t.Fatalf("second retry replayed again: %d submissions", len(got))
	}
}

// An upstream redirect after the replay passes through, as a 303.
func TestUpstreamRedirectPassesThrough(t *testing.T) {
	e := newEnv(t)
	e.up.SetAnswer(func(w http.ResponseWriter, r *http.Request, _ gatewaytest.Request) {
		if r.Method == http.MethodPost {
			http.Redirect(w, r, "thanks?order=9", http.StatusTemporaryRedirect)
			return
		}
		w.Write([]byte("thanks page"))
	})
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/shop/checkout", "application/x-www-form-urlencoded", []byte("x=1"))
	resp := b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/shop/thanks?order=9" {
		t.Fatalf("upstream redirect: %d %q, want 303 /shop/thanks?order=9", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The login form sent again (a double click) leads to the same place,
	// and nothing is sent twice.
	again := b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, again)
	if again.StatusCode != http.StatusSeeOther || again.Header.Get("Location") != "/shop/checkout" {
		t.Fatalf("second login: %d %q", again.StatusCode, again.Header.Get("Location"))
	}
	shown := b.Do(http.MethodGet, "/shop/checkout", "", nil)
	gatewaytest.ReadBody(t, shown)
	if shown.StatusCode != http.StatusSeeOther || shown.Header.Get("Location") != "/shop/thanks?order=9" {
		t.Fatalf("kept redirect: %d %q", shown.StatusCode, shown.Header.Get("Location"))
	}
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("upstream received %d submissions", n)
	}
}

// An expired or unknown stash says so and offers to go back.
func TestUnknownStashSaysSo(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "text/plain", []byte("x"))
	f.Set("stash", "AAAAAAAAAAAAAAAAAAAAAA")
	page := gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusGone)
	if !strings.Contains(page, "expired") || !strings.Contains(page, `href="/checkout"`) {
		t.Fatalf("expired page:\n%s", page)
	}
}

// A stash made in one browser is never replayed in another.
func TestForeignStashNotReplayed(t *testing.T) {
	e := newEnv(t)
	victim := e.browser()
	f := victim.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "text/plain", []byte("victim"))
	attacker := e.browser()
	lp := gatewaytest.ExpectStatus(t, attacker.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	af := gatewaytest.HiddenFields(lp)
	af.Set("stash", f.Get("stash"))
	resp := attacker.Login(af, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	if n := len(e.up.Submissions()); n != 0 {
		t.Fatalf("another browser replayed the stash")
	}
	// The owner still can.
	victim.Follow(victim.Login(f, testUser, testPassword), http.StatusOK)
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("owner's replay: %d", n)
	}
}

// A wrong password or a missing CSRF token loses nothing: the stash waits.
func TestFailedLoginKeepsStash(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "text/plain", []byte("keep"))
	page := gatewaytest.ExpectStatus(t, b.Login(f, testUser, "wrong"), http.StatusUnauthorized)
	if !strings.Contains(page, "Wrong username or password") || gatewaytest.HiddenFields(page).Get("stash") != f.Get("stash") {
		t.Fatalf("failed login page:\n%s", page)
	}
	noCSRF := url.Values{"stash": {f.Get("stash")}, "rd": {"/checkout"}}
	gatewaytest.ExpectStatus(t, b.Login(noCSRF, testUser, testPassword), http.StatusForbidden)
	if n := len(e.up.Submissions()); n != 0 {
		t.Fatal("replayed without a valid login")
	}
	b.Follow(b.Login(f, testUser, testPassword), http.StatusOK)
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("replays: %d", n)
	}
}
