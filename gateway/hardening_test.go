package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// An upstream that answers the replay with a redirect and a cookie of its
// own (a flash message) does not log the person out: both cookies arrive.
func TestReplayRedirectKeepsBothCookies(t *testing.T) {
	e := newEnv(t)
	e.up.SetAnswer(func(w http.ResponseWriter, r *http.Request, _ gatewaytest.Request) {
		if r.Method == http.MethodPost {
			http.SetCookie(w, &http.Cookie{Name: "flash", Value: "saved", Path: "/"})
			http.Redirect(w, r, "/thanks", http.StatusSeeOther)
			return
		}
		w.Write([]byte("thanks, flash=" + cookieValue(r, "flash")))
	})
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/order", "text/plain", []byte("x"))
	resp := b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/thanks" {
		t.Fatalf("after login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/thanks", "", nil), http.StatusOK)
	if page != "thanks, flash=saved" {
		t.Fatalf("page %q: the upstream's cookie or the session was lost", page)
	}
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// A request target starting with // is not kept: the way back after login
// would leave the gateway's origin.
func TestDoubleSlashTargetNotKept(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "//evil.example/phish", "text/plain", []byte("x")), http.StatusBadRequest)
	// A double slash inside the path is kept, and the answer waits at
	// exactly that URL.
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/shop//checkout", "text/plain", []byte("y"))
	resp := b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	if loc := resp.Header.Get("Location"); loc != "/shop//checkout" {
		t.Fatalf("303 to %q, want /shop//checkout", loc)
	}
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/shop//checkout", "", nil), http.StatusOK)
	if !strings.Contains(page, "app answer #1: POST") {
		t.Fatalf("kept answer not shown: %s", page)
	}
}

// Underscore spellings of identity headers never reach the upstream.
func TestUnderscoreIdentityHeadersStripped(t *testing.T) {
	e := newEnv(t)
	cookie := e.loginCookie(t)
	req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/x", nil)
	req.Header.Set("Cookie", cookie)
	req.Header["X-Forwarded_User"] = []string{"admin"}
	req.Header["X_Forwarded_Email"] = []string{"admin@corp"}
	req.Header["X-Postern_Assertion"] = []string{"forged"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.ExpectStatus(t, resp, http.StatusOK)
	got := e.up.Requests()
	for k := range got[len(got)-1].Header {
		if strings.Contains(k, "_") {
			t.Errorf("%s reached the upstream", k)
		}
	}
}

// Forward auth answers 403 for an address no route serves, never 200.
func TestForwardAuthNeedsARoute(t *testing.T) {
	e := newEnv(t, func(o *gateway.Options) {
		o.Routes[0].Host = "app.internal"
		o.Routes[0].Policy = auth.Policy{Emails: []string{"someone@example.com"}}
		o.Routes = append(o.Routes, gateway.Route{Host: "open.internal", Upstream: o.Routes[0].Upstream})
		// The test client is the proxy asking.
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	cookie := e.loginCookie(t)
	check := func(host string) int {
		req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/.postern/auth", nil)
		req.Header.Set("Cookie", cookie)
		req.Header.Set("X-Forwarded-Host", host)
		req.Header.Set("X-Forwarded-Uri", "/page")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		gatewaytest.ReadBody(t, resp)
		return resp.StatusCode
	}
	for host, want := range map[string]int{"open.internal": 200, "app.internal": 403, "other.internal": 403} {
		if got := check(host); got != want {
			t.Errorf("forward auth for %s: %d, want %d", host, got, want)
		}
	}
}

// A browser that gives up while its replay is under way does not cut the
// replay short: the upstream receives the whole body, once.
func TestReplaySurvivesBrowserLeaving(t *testing.T) {
	t.Run("file store", func(t *testing.T) { replaySurvivesBrowserLeaving(t, newEnv(t)) })
	t.Run("redis", func(t *testing.T) { replaySurvivesBrowserLeaving(t, newRedisEnv(t)) })
}

func replaySurvivesBrowserLeaving(t *testing.T, e *env) {
	started, leave := make(chan struct{}), make(chan struct{})
	var got []byte
	var gotErr error
	finished := make(chan struct{})
	// The upstream starts reading the replay, then waits until the browser
	// has gone before reading the rest.
	e.up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		first := make([]byte, 1024)
		n, _ := io.ReadFull(r.Body, first)
		close(started)
		<-leave
		rest, err := io.ReadAll(r.Body)
		got, gotErr = append(first[:n], rest...), err
		close(finished)
		w.Write([]byte("done"))
	})
	b := e.browser()
	body := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/upload", "application/octet-stream", body)
	ctx, cancel := context.WithCancel(context.Background())
	f.Set("username", testUser)
	f.Set("password", testPassword)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.gw.URL+"/.postern/login", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := b.Client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("replay never reached the upstream")
	}
	cancel() // the browser leaves mid-replay
	<-done
	close(leave)
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream never finished reading the replay")
	}
	if gotErr != nil || !bytes.Equal(got, body) {
		t.Fatalf("upstream read %d of %d bytes (err %v): the replay was cut short", len(got), len(body), gotErr)
	}
}
