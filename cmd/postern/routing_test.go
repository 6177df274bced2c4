package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/gateway/gatewaytest"
)

// TestCheckConfigPublicPaths: a public path that is not a path is an error
// naming the setting; a public prefix covering / is valid but warned about,
// for --public-path and for a YAML route with public: true.
func TestCheckConfigPublicPaths(t *testing.T) {
	users := writeTemp(t, "users", "demo:$2y$12$0123456789012345678901u012345678901234567890123456789\n")
	base := []string{"check-config", "--cookie-secret", testSecret, "--htpasswd-file", users}

	for _, bad := range []string{"webhooks", "https://x.example/hooks", "/hooks?x=1", "/a/../b", "//evil"} {
		code, _, errOut := runCmd(t, "", append(base, "--upstream", "http://127.0.0.1:3000", "--public-path", bad)...)
		if code != exitConfig || !strings.Contains(errOut, "public_path[0]:") {
			t.Errorf("--public-path %q: exit %d, stderr %q; want exit %d naming public_path", bad, code, errOut, exitConfig)
		}
	}

	code, out, errOut := runCmd(t, "", append(base, "--upstream", "http://127.0.0.1:3000", "--public-path", "/hooks", "--public-path", "/")...)
	if code != exitOK || !strings.HasPrefix(out, "config ok: ") || !strings.Contains(errOut, "warning: public_path: / makes the whole upstream public") {
		t.Errorf("--public-path /: exit %d, stdout %q, stderr %q; want ok with a warning", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "", append(base, "--upstream", "http://127.0.0.1:3000", "--public-path", "/hooks")...)
	if code != exitOK || strings.Contains(errOut, "warning") {
		t.Errorf("--public-path /hooks: exit %d, stderr %q; want ok without a warning", code, errOut)
	}

	routes := writeTemp(t, "routes.yaml", "routes:\n  - path_prefix: /hooks\n    upstream: http://127.0.0.1:3001\n    public: true\n"+
		"  - host: status.example.com\n    upstream: http://127.0.0.1:3002\n    public: true\n  - upstream: http://127.0.0.1:3000\n")
	code, out, errOut = runCmd(t, "", append(base, "--config", routes)...)
	if code != exitOK || !strings.HasPrefix(out, "config ok: ") || !strings.Contains(errOut, "routes[1]") ||
		!strings.Contains(errOut, "all of status.example.com public") || strings.Contains(errOut, "routes[0]") {
		t.Errorf("routes with public: exit %d, stdout %q, stderr %q; want ok, one warning for routes[1]", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "", append(base, "--config", routes, "--public-path", "/x")...)
	if code != exitConfig || !strings.Contains(errOut, "public_path: only for the single --upstream") {
		t.Errorf("--public-path with routes: exit %d, stderr %q", code, errOut)
	}
}

// TestPublicPathAndPreflightFlags runs the binary with --public-path and
// --skip-auth-preflight: a webhook and a preflight reach the app without a
// login, everything else is still asked for one.
func TestPublicPathAndPreflightFlags(t *testing.T) {
	app := newRecorder(t)
	s := newSetup(t, app.URL, "file:"+t.TempDir())
	s.extraArgs = []string{"--public-path", "/webhooks", "--skip-auth-preflight"}
	p := s.start(t)
	b := newBrowser(t).At(p.base)

	gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/webhooks/stripe", "application/json", []byte(`{}`), "X-Forwarded-User", "mallory"), http.StatusOK)
	gatewaytest.ExpectStatus(t, b.Do(http.MethodOptions, "/api", "", nil,
		"Origin", "https://spa.example", "Access-Control-Request-Method", "PUT", "Accept", "*/*"), http.StatusOK)
	resp := b.Do(http.MethodPost, "/orders", "application/x-www-form-urlencoded", []byte("a=1"))
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("POST /orders: %d, want 307 into the login", resp.StatusCode)
	}
	reqs := app.Requests()
	if len(reqs) != 2 || reqs[0].URI != "/webhooks/stripe" || reqs[0].Header.Get("X-Forwarded-User") != "" || reqs[1].Method != http.MethodOptions {
		t.Fatalf("app got %+v, want the webhook (no identity) and the preflight", reqs)
	}
}

// TestCheckConfigCookieDomain: a cookie domain that is not a domain name is
// an error naming cookie_domain; one that does not cover the public URL's
// host is a warning.
func TestCheckConfigCookieDomain(t *testing.T) {
	users := writeTemp(t, "users", "demo:$2y$12$0123456789012345678901u012345678901234567890123456789\n")
	base := []string{"check-config", "--cookie-secret", testSecret, "--htpasswd-file", users, "--upstream", "http://127.0.0.1:3000"}
	for _, bad := range []string{"https://example.com", "example.com:443", "127.0.0.1", "example.com/", ".", "a..b.com."} {
		if code, _, errOut := runCmd(t, "", append(base, "--cookie-domain", bad)...); code != exitConfig || !strings.Contains(errOut, "cookie_domain:") {
			t.Errorf("--cookie-domain %q: exit %d, stderr %q", bad, code, errOut)
		}
	}
	code, out, errOut := runCmd(t, "", append(base, "--cookie-domain", ".example.com", "--public-url", "https://apps.example.com")...)
	if code != exitOK || !strings.HasPrefix(out, "config ok: ") || errOut != "" {
		t.Errorf("covered public host: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "", append(base, "--cookie-domain", "example.com", "--public-url", "https://auth.other.test")...)
	if code != exitOK || !strings.Contains(errOut, "warning: cookie_domain: example.com does not cover the public URL's host auth.other.test") {
		t.Errorf("uncovered public host: exit %d, stderr %q", code, errOut)
	}
}

// TestCheckConfigPages: a templates directory that is missing or holds a
// broken template, and an empty brand name, are errors naming the setting.
func TestCheckConfigPages(t *testing.T) {
	users := writeTemp(t, "users", "demo:$2y$12$0123456789012345678901u012345678901234567890123456789\n")
	base := []string{"check-config", "--cookie-secret", testSecret, "--htpasswd-file", users, "--upstream", "http://127.0.0.1:3000"}
	broken := writeTemp(t, "login.html", "{{template \"head\" .}}{{if}}")
	for name, args := range map[string][]string{
		"missing dir": {"--templates-dir", "/nonexistent/postern-templates"},
		"broken":      {"--templates-dir", filepath.Dir(broken)},
		"empty brand": {"--brand-name", " "},
		"long brand":  {"--brand-name", strings.Repeat("x", 101)},
	} {
		want := "templates_dir: "
		if strings.HasPrefix(name, "empty") || strings.HasPrefix(name, "long") {
			want = "--brand-name: "
		}
		if code, _, errOut := runCmd(t, "", append(base, args...)...); code != exitConfig || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, stderr %q; want %q", name, code, errOut, want)
		}
	}
	good := t.TempDir()
	if err := os.WriteFile(filepath.Join(good, "loggedout.html"), []byte(`{{template "head" .}}<h1>Bye from {{.Brand}}</h1>{{template "foot" .}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCmd(t, "", append(base, "--templates-dir", good, "--brand-name", "Acme")...); code != exitOK {
		t.Errorf("good templates: exit %d %q %q", code, out, errOut)
	}
}
