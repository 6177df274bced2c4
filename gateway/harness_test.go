package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
)

// received is one request as the upstream saw it.
type received struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// upstream is a real HTTP server standing in for the protected app: it
// records every request and answers with what it received.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
	// answer, if set, writes the response instead of the default.
	answer func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		answer := u.answer
		n := len(u.reqs)
		u.mu.Unlock()
		if answer != nil {
			answer(w, r, body)
			return
		}
		sum := sha256.Sum256(body)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-App", "checkout")
		fmt.Fprintf(w, "<p>app answer #%d: %s %s user=%s replayed=%s sha=%s</p><a href=\"next\">next</a>",
			n, r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-User"), r.Header.Get("X-Postern-Replayed"), hex.EncodeToString(sum[:]))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.reqs...)
}

// nonGET counts the requests that would change something upstream.
func (u *upstream) nonGET() []received {
	var out []received
	for _, r := range u.requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			out = append(out, r)
		}
	}
	return out
}

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

var testSecret = bytes.Repeat([]byte("k"), 32)

// env is a gateway listening on a real port, in front of an upstream.
type env struct {
	t         testing.TB
	transport http.RoundTripper // nil: the gateway's own
	// parts, if set, adjusts the gateway's parts once its public URL is known.
	parts    func(p *gateway.Parts, o *gateway.Options)
	up       *upstream
	gw       *httptest.Server
	storeDir string
	addr     string
	backend  session.Backend
	// secrets are the cookie secrets, newest first; nil: testSecret.
	secrets [][]byte
	// openBackend opens the store; nil: the file store in storeDir.
	openBackend func() session.Backend
	opts        gateway.Options
}

type envOption func(*gateway.Options)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, up: newUpstream(t), storeDir: t.TempDir()}
	e.start(opts...)
	return e
}

// start (re)starts the gateway on the env's store directory.
func (e *env) start(opts ...envOption) {
	t := e.t
	t.Helper()
	var backend session.Backend
	if e.openBackend != nil {
		backend = e.openBackend()
	} else {
		fs, err := filestore.Open(filepath.Join(e.storeDir, "postern.db"))
		if err != nil {
			t.Fatal(err)
		}
		backend = fs
	}
	e.backend = backend
	secrets := e.secrets
	if secrets == nil {
		secrets = [][]byte{testSecret}
	}
	sealer, err := session.NewSealer(secrets)
	if err != nil {
		t.Fatal(err)
	}
	cookies, err := session.NewCookies(session.CookieOptions{Name: "postern", Secrets: secrets, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.ParseHtpasswd("test", []byte(testUser+":"+string(hash)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The public URL is known only once the listener exists.
	var h http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	if e.addr != "" {
		// A restart listens where the gateway was, as a real one would.
		srv.Listener.Close()
		l, err := net.Listen("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = l
	}
	srv.Start()
	e.addr = srv.Listener.Addr().String()
	pub, _ := url.Parse(srv.URL)
	up, _ := url.Parse(e.up.URL)
	o := gateway.Options{
		PublicURL:    pub,
		Routes:       []gateway.Route{{Upstream: up}},
		StashMaxBody: 10 << 20,
		StashTTL:     10 * time.Minute,
		SessionTTL:   time.Hour,
	}
	for _, f := range opts {
		f(&o)
	}
	parts := gateway.Parts{
		Store:     session.NewStore(backend, sealer),
		Cookies:   cookies,
		Passwords: users,
		Transport: e.transport,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if e.parts != nil {
		e.parts(&parts, &o)
	}
	e.opts = o
	g, err := gateway.New(o, parts)
	if err != nil {
		t.Fatal(err)
	}
	h = g
	e.gw = srv
	t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.gw != nil {
		e.gw.Close()
		e.gw = nil
	}
	if e.backend != nil {
		_ = e.backend.Close()
		e.backend = nil
	}
}

// browser is a client with a cookie jar that does not follow redirects, so
// each hop is asserted.
type browser struct {
	t   testing.TB
	e   *env
	c   *http.Client
	jar http.CookieJar
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, jar: jar, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       60 * time.Second,
	}}
}

// do sends a request as a page load of the gateway's own origin would.
func (b *browser) do(method, path, contentType string, body []byte, hdr ...string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.e.gw.URL+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Origin", b.e.gw.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func expectStatus(t testing.TB, resp *http.Response, want int) string {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.600s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
	return body
}

var hiddenRE = regexp.MustCompile(`name="([a-z]+)" value="([^"]*)"`)

// formFields returns the hidden fields of the gateway's page.
func formFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// submitWhileLoggedOut sends a submission with no session and follows the
// 307 as a browser does (same method and body, to the login); it returns the
// login page's hidden fields.
func (b *browser) submitWhileLoggedOut(method, path, contentType string, body []byte) url.Values {
	b.t.Helper()
	resp := b.do(method, path, contentType, body)
	readBody(b.t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		b.t.Fatalf("%s %s without session: status %d, want 307", method, path, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/.postern/login?") || !strings.Contains(loc, "stash=") {
		b.t.Fatalf("307 Location %q is not the gateway's login with a stash", loc)
	}
	page := expectStatus(b.t, b.do(method, loc, contentType, body), http.StatusOK)
	f := formFields(page)
	if f.Get("stash") == "" || f.Get("csrf") == "" {
		b.t.Fatalf("login page lacks stash or csrf fields:\n%s", page)
	}
	return f
}

// login posts the login form with the given hidden fields.
func (b *browser) login(fields url.Values, user, password string) *http.Response {
	b.t.Helper()
	f := url.Values{}
	for k, v := range fields {
		f[k] = v
	}
	f.Set("username", user)
	f.Set("password", password)
	return b.do(http.MethodPost, "/.postern/login", "application/x-www-form-urlencoded", []byte(f.Encode()))
}

// follow GETs the Location of a 303 and returns the page.
func (b *browser) follow(resp *http.Response, wantStatus int) string {
	b.t.Helper()
	readBody(b.t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("status %d, want 303", resp.StatusCode)
	}
	return expectStatus(b.t, b.do(http.MethodGet, resp.Header.Get("Location"), "", nil), wantStatus)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var _ = context.Background
var _ = os.Getenv

// newBenchEnv is an env whose gateway uses transport to reach the upstream.
func newBenchEnv(tb testing.TB, transport http.RoundTripper) *env {
	e := &env{t: tb, up: newUpstream(tb), storeDir: tb.TempDir(), transport: transport}
	e.up.answer = func(w http.ResponseWriter, r *http.Request, _ []byte) { _, _ = w.Write([]byte("ok")) }
	e.start()
	return e
}

// loginCookie logs a browser in and returns its Cookie header.
func (e *env) loginCookie(tb testing.TB) string {
	b := e.browser()
	lp := expectStatus(tb, b.do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	readBody(tb, b.login(formFields(lp), testUser, testPassword))
	u, _ := url.Parse(e.gw.URL)
	var parts []string
	for _, c := range b.jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}
