package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
	"github.com/postern/postern/session/redisstore/redistest"
)

// Two gateways (replicas, each its own Store and Redis connections) on one
// real Redis keep session records in memory. A logout on one is refused on
// the other at the very next request, even though that one had the session
// in memory: the logout returns only once every replica forgot it.
func TestLogoutOnOneReplicaIsRefusedOnTheOtherAtOnce(t *testing.T) {
	url := redistest.URLForTest(t)
	prefix := "gw-" + session.NewID()[:8]
	open := func() session.Backend {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := redisstore.Open(ctx, url, redisstore.WithKeyPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	up := gatewaytest.NewUpstream(t)
	a := &env{t: t, up: up, storeDir: t.TempDir(), openBackend: open}
	a.start()
	b := &env{t: t, up: up, storeDir: t.TempDir(), openBackend: open}
	b.start()

	for round := range 5 {
		cookie := a.loginCookie(t)
		get := func(e *env) int {
			req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/page", nil)
			req.Header.Set("Cookie", cookie)
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			gatewaytest.ReadBody(t, resp)
			return resp.StatusCode
		}
		// Both replicas serve the session, and now hold it in memory.
		for range 3 {
			if s := get(a); s != http.StatusOK {
				t.Fatalf("round %d: replica a: %d", round, s)
			}
			if s := get(b); s != http.StatusOK {
				t.Fatalf("round %d: replica b: %d", round, s)
			}
		}
		// Log out on a, with the cookie kept aside (another tab, or a
		// stolen copy, still carries it).
		br := gatewaytest.NewBrowser(t, a.gw.URL)
		lp := gatewaytest.ExpectStatus(t, br.Do(http.MethodGet, "/.postern/logout", "", nil, "Cookie", cookie), http.StatusOK)
		out := br.Do(http.MethodPost, "/.postern/logout", "application/x-www-form-urlencoded",
			[]byte(gatewaytest.HiddenFields(lp).Encode()), "Cookie", cookie)
		gatewaytest.ReadBody(t, out)
		if out.StatusCode != http.StatusSeeOther {
			t.Fatalf("round %d: logout: %d", round, out.StatusCode)
		}
		if s := get(b); s != http.StatusUnauthorized {
			t.Fatalf("round %d: replica b after the logout on a: %d, want 401", round, s)
		}
		if s := get(a); s != http.StatusUnauthorized {
			t.Fatalf("round %d: replica a after its logout: %d, want 401", round, s)
		}
	}
}

// On the file store (one process), a session kept in memory is forgotten
// at the logout: the same cookie is refused at once.
func TestLogoutForgetsTheSessionKeptInMemory(t *testing.T) {
	e := newEnv(t)
	cookie := e.loginCookie(t)
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/page", nil)
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		gatewaytest.ReadBody(t, resp)
		return resp.StatusCode
	}
	for range 3 {
		if s := get(); s != http.StatusOK {
			t.Fatalf("logged in: %d", s)
		}
	}
	br := e.browser()
	lp := gatewaytest.ExpectStatus(t, br.Do(http.MethodGet, "/.postern/logout", "", nil, "Cookie", cookie), http.StatusOK)
	gatewaytest.ReadBody(t, br.Do(http.MethodPost, "/.postern/logout", "application/x-www-form-urlencoded",
		[]byte(gatewaytest.HiddenFields(lp).Encode()), "Cookie", cookie))
	if s := get(); s != http.StatusUnauthorized {
		t.Fatalf("after the logout: %d, want 401", s)
	}
}
