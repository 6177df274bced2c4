package gateway_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// The gateway's own endpoints answer themselves and are never forwarded.
func TestOwnEndpoints(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	var info map[string]any
	resp := b.do(http.MethodGet, "/.postern/userinfo", "", nil, "Accept", "application/json")
	if body := expectStatus(t, resp, http.StatusUnauthorized); json.Unmarshal([]byte(body), &info) != nil {
		t.Fatalf("userinfo without a session is not JSON: %q", body)
	}
	lp := expectStatus(t, b.do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	b.follow(b.login(formFields(lp), testUser, testPassword), http.StatusOK)
	body := expectStatus(t, b.do(http.MethodGet, "/.postern/userinfo", "", nil, "Accept", "application/json"), http.StatusOK)
	if err := json.Unmarshal([]byte(body), &info); err != nil || info["user"] != testUser || info["method"] != "local" {
		t.Fatalf("userinfo: %q", body)
	}
	expectStatus(t, b.do(http.MethodGet, "/.postern/healthz", "", nil), http.StatusOK)
	expectStatus(t, b.do(http.MethodGet, "/.postern/readyz", "", nil), http.StatusOK)
	expectStatus(t, b.do(http.MethodGet, "/.postern/jwks.json", "", nil), http.StatusOK)
	expectStatus(t, b.do(http.MethodPost, "/.postern/no-such-thing", "text/plain", []byte("x")), http.StatusNotFound)
	// Forward auth: 200 with identity for a session, 401 without.
	resp = b.do(http.MethodGet, "/.postern/auth", "", nil)
	readBody(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Forwarded-User") != testUser {
		t.Fatalf("forward auth with a session: %d user %q", resp.StatusCode, resp.Header.Get("X-Forwarded-User"))
	}
	other := e.browser()
	expectStatus(t, other.do(http.MethodGet, "/.postern/auth", "", nil), http.StatusUnauthorized)
	// HEAD without a session goes to the login like GET.
	resp = other.do(http.MethodHead, "/page", "", nil)
	readBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("HEAD without a session: %d", resp.StatusCode)
	}
	for _, r := range e.up.requests() {
		if len(r.Path) >= 10 && r.Path[:10] == "/.postern/" {
			t.Fatalf("%s %s reached the upstream", r.Method, r.Path)
		}
	}
}
