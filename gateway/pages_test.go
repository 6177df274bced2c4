package gateway_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/auth/oidc/oidctest"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// TestBrandNameOnEveryPage: the brand is in the title and the heading of
// the login, logout, logged-out and error pages.
func TestBrandNameOnEveryPage(t *testing.T) {
	e := newEnv(t, func(o *gateway.Options) { o.BrandName = "Acme <Corp>" })
	b := e.browser()
	for path, status := range map[string]int{
		"/.postern/login":       http.StatusOK,
		"/.postern/logout":      http.StatusOK,
		"/.postern/logout?done": http.StatusOK,
		"/.postern/nothing":     http.StatusNotFound,
	} {
		page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, path, "", nil), status)
		if !strings.Contains(page, " · Acme &lt;Corp&gt;</title>") || !strings.Contains(page, `<p class="brand">Acme &lt;Corp&gt;</p>`) {
			t.Errorf("%s: brand not in the title and heading:\n%s", path, page)
		}
	}
	if page := gatewaytest.ReadBody(t, b.Do(http.MethodGet, "/.postern/login", "", nil)); !strings.Contains(page, "<h1>Log in to Acme &lt;Corp&gt;</h1>") {
		t.Errorf("login heading:\n%s", page)
	}
}

// TestLoginPageSaysWhatIsWaiting: the login page names the kept
// submission's method and path (not its query), for the local login and on
// the login page that leads to single sign-on.
func TestLoginPageSaysWhatIsWaiting(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp := b.Do(http.MethodPost, "/checkout?card=4111", "application/x-www-form-urlencoded", []byte("item=tea"))
	gatewaytest.ReadBody(t, resp)
	page := gatewaytest.ExpectStatus(t, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "application/x-www-form-urlencoded", []byte("item=tea")), http.StatusOK)
	if !strings.Contains(page, "<strong>POST /checkout</strong> will be sent once you log in.") || strings.Contains(page, "POST /checkout?card") {
		t.Errorf("login page after POST /checkout:\n%s", page)
	}
	// Another browser following the same login URL is not told.
	other := gatewaytest.ReadBody(t, e.browser().Do(http.MethodGet, resp.Header.Get("Location"), "", nil))
	if strings.Contains(other, "/checkout</strong>") {
		t.Errorf("another browser's login page names the submission:\n%s", other)
	}

	// Local users and OIDC: the page before the hop to the provider says it too.
	shop := gatewaytest.NewUpstream(t)
	e2, _ := newOIDCEnv(t, func(p *gateway.Parts, o *gateway.Options, _ *oidctest.Server) {
		p.Passwords = gatewaytest.Parts(t, nil, [][]byte{testSecret}, "x", testUser, testPassword).Passwords
		hostsEnv(shop)(o)
	})
	s := shopBrowser(e2, e2.browser())
	resp = s.Do(http.MethodPut, "/orders/7", "application/json", []byte(`{"qty":2}`))
	gatewaytest.ReadBody(t, resp)
	page = gatewaytest.ExpectStatus(t, s.FollowToLogin(http.MethodPut, resp.Header.Get("Location"), "application/json", []byte(`{"qty":2}`)), http.StatusOK)
	if !strings.Contains(page, "<strong>PUT /orders/7</strong> will be sent once you log in.") || !strings.Contains(page, `class="sso"`) {
		t.Errorf("login page with single sign-on:\n%s", page)
	}
}

// TestTemplatesDir: a template in the directory replaces the embedded one,
// the others stay; a missing directory, an unknown file or a template that
// does not parse or render is an error naming the file.
func TestTemplatesDir(t *testing.T) {
	dir := t.TempDir()
	custom := `{{template "head" .}}<h1>Welcome to {{.Brand}}</h1>{{with .Pending}}<p id="waiting">{{.}} waits</p>{{end}}` +
		`<form method="post" action="/.postern/login"><input type="hidden" name="csrf" value="{{.CSRF}}">` +
		`{{if .Stash}}<input type="hidden" name="stash" value="{{.Stash}}">{{end}}<input type="hidden" name="rd" value="{{.Return}}">` +
		`<input name="username"><input name="password" type="password"></form>{{template "foot" .}}`
	if err := os.WriteFile(filepath.Join(dir, "login.html"), []byte(custom), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("ignored"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *gateway.Options) { o.TemplatesDir, o.BrandName = dir, "Acme" })
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("a=1"))
	page := gatewaytest.ReadBody(t, b.Do(http.MethodGet, "/.postern/login?stash="+f.Get("stash")+"&rd=/checkout", "", nil))
	if !strings.Contains(page, "<h1>Welcome to Acme</h1>") || !strings.Contains(page, `<p id="waiting">POST /checkout waits</p>`) {
		t.Errorf("custom login page:\n%s", page)
	}
	b.Follow(b.Login(f, testUser, testPassword), http.StatusOK)
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("login through the custom page replayed %d submissions", n)
	}
	// Not overridden: the embedded error page, with the brand.
	if page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/nothing", "", nil), http.StatusNotFound); !strings.Contains(page, "There is no such page") || !strings.Contains(page, "Acme") {
		t.Errorf("embedded error page:\n%s", page)
	}

	for name, c := range map[string]struct{ file, text, want string }{
		"missing":      {want: "no such file or directory"},
		"unknown file": {file: "signin.html", text: "x", want: "signin.html is not one of the gateway's templates"},
		"unparsable":   {file: "error.html", text: "{{if .Error}}", want: "error.html"},
		"bad field":    {file: "logout.html", text: "{{.Nope}}", want: "can't evaluate field Nope"},
	} {
		d := filepath.Join(t.TempDir(), "t")
		if c.file != "" {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, c.file), []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := gateway.CheckTemplates(d)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), d) {
			t.Errorf("%s: %v, want an error naming %s and %q", name, err, d, c.want)
		}
		o := gatewaytest.Options(t, "http://127.0.0.1:1", "http://127.0.0.1:2")
		o.TemplatesDir = d
		if _, err := gateway.New(o, gatewaytest.Parts(t, e.backend, [][]byte{testSecret}, "x", testUser, testPassword)); err == nil {
			t.Errorf("%s: gateway.New accepted the templates", name)
		}
	}
}
