package gateway_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/postern/postern/gateway/gatewaytest"
)

// The gateway's own endpoints answer themselves and are never forwarded.
func TestOwnEndpoints(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	var info map[string]any
	resp := b.Do(http.MethodGet, "/.postern/userinfo", "", nil, "Accept", "application/json")
	if body := gatewaytest.ExpectStatus(t, resp, http.StatusUnauthorized); json.Unmarshal([]byte(body), &info) != nil {
		t.Fatalf("userinfo without a session is not JSON: %q", body)
	}
	lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	b.Follow(b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword), http.StatusOK)
	body := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/userinfo", "", nil, "Accept", "application/json"), http.StatusOK)
	if err := json.Unmarshal([]byte(body), &info); err != nil || info["user"] != testUser || info["method"] != "local" {
		t.Fatalf("userinfo: %q", body)
	}
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/healthz", "", nil), http.StatusOK)
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/readyz", "", nil), http.StatusOK)
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/jwks.json", "", nil), http.StatusOK)
	gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/.postern/no-such-thing", "text/plain", []byte("x")), http.StatusNotFound)
	// Forward auth: 200 with identity for a session, 401 without.
	resp = b.Do(http.MethodGet, "/.postern/auth", "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Forwarded-User") != testUser {
		t.Fatalf("forward auth with a session: %d user %q", resp.StatusCode, resp.Header.Get("X-Forwarded-User"))
	}
	other := e.browser()
	gatewaytest.ExpectStatus(t, other.Do(http.MethodGet, "/.postern/auth", "", nil), http.StatusUnauthorized)
	// HEAD without a session goes to the login like GET.
	resp = other.Do(http.MethodHead, "/page", "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("HEAD without a session: %d", resp.StatusCode)
	}
	for _, r := range e.up.Requests() {
		if len(r.Path) >= 10 && r.Path[:10] == "/.postern/" {
			t.Fatalf("%s %s reached the upstream", r.Method, r.Path)
		}
	}
}
