package gatewaytest

import (
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Browser is an HTTP client that sends what a browser's page load sends,
// with a cookie jar, and follows no redirect: each hop is the test's to
// assert. Go's cookie jar scopes cookies by host, not port, so one Browser
// carries its cookies to every server on 127.0.0.1.
type Browser struct {
	// Client has the cookie jar and returns every redirect as it is.
	Client *http.Client
	// Base is put before a target that begins with "/": the gateway's URL.
	Base string
	// Origin is sent as Origin, with Sec-Fetch-Site same-origin, on every
	// request but GET and HEAD. NewBrowser sets it to base.
	Origin string

	t testing.TB
}

// NewBrowser returns a Browser for the gateway at base (a URL without a
// path), with an empty cookie jar.
func NewBrowser(t testing.TB, base string) *Browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Browser{t: t, Base: base, Origin: base, Client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       60 * time.Second,
	}}
}

// At returns the same browser (same client and cookies) aimed at another
// gateway. Origin stays: replicas behind one load balancer are one origin;
// set it too for a gateway with a public URL of its own.
func (b *Browser) At(base string) *Browser {
	c := *b
	c.Base = base
	return &c
}

// Send sends a request as a page load would. size is the body's length, or
// -1 when unknown. header holds extra name/value pairs; an empty value
// removes the header. Send does not fail the test, so goroutines may use it.
func (b *Browser) Send(ctx context.Context, method, target, contentType string, body io.Reader, size int64, header ...string) (*http.Response, error) {
	if strings.HasPrefix(target, "/") {
		target = b.Base + target
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if body != nil && size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Origin", b.Origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	return b.Client.Do(req)
}

// Do is Send with a body in memory; a transport error fails the test.
func (b *Browser) Do(method, target, contentType string, body []byte, header ...string) *http.Response {
	b.t.Helper()
	resp, err := b.Send(context.Background(), method, target, contentType, bytes.NewReader(body), int64(len(body)), header...)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp
}

// SubmitWhileLoggedOut sends a submission with no session, checks the 307
// into the gateway's login with a stash, follows it as a browser does (same
// method and body), checks the 303 to the login page as a GET, follows that
// and returns the login page's hidden fields.
func (b *Browser) SubmitWhileLoggedOut(method, path, contentType string, body []byte) url.Values {
	b.t.Helper()
	resp := b.Do(method, path, contentType, body)
	ReadBody(b.t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		b.t.Fatalf("%s %s without a session: status %d, want 307", method, path, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/.postern/login?") || !strings.Contains(loc, "stash=") {
		b.t.Fatalf("307 Location %q is not the gateway's login with a stash", loc)
	}
	page := ExpectStatus(b.t, b.FollowToLogin(method, loc, contentType, body), http.StatusOK)
	f := HiddenFields(page)
	if f.Get("stash") == "" || f.Get("csrf") == "" {
		b.t.Fatalf("login page after %s %s lacks stash or csrf fields:\n%s", method, path, page)
	}
	return f
}

// FollowToLogin follows the gateway's 307 into its login (loc) as a
// browser does, with the submission's method and body, checks that the
// login answers 303 to itself as a GET (so the browser's history holds no
// POST) and returns the answer to that GET.
func (b *Browser) FollowToLogin(method, loc, contentType string, body []byte, header ...string) *http.Response {
	b.t.Helper()
	follow := b.Do(method, loc, contentType, body, header...)
	ReadBody(b.t, follow)
	if follow.StatusCode != http.StatusSeeOther || follow.Header.Get("Location") != loc {
		b.t.Fatalf("%s %s (the 307 followed): status %d Location %q, want 303 to the same login as a GET",
			method, loc, follow.StatusCode, follow.Header.Get("Location"))
	}
	return b.Do(http.MethodGet, loc, "", nil, header...)
}

// Login posts the login form: the page's hidden fields with user and
// password filled in.
func (b *Browser) Login(fields url.Values, user, password string) *http.Response {
	b.t.Helper()
	f := url.Values{}
	for k, v := range fields {
		f[k] = v
	}
	f.Set("username", user)
	f.Set("password", password)
	return b.Do(http.MethodPost, "/.postern/login", "application/x-www-form-urlencoded", []byte(f.Encode()))
}

// Follow checks that resp is a 303, GETs its Location and returns that
// page, failing the test unless its status is wantStatus.
func (b *Browser) Follow(resp *http.Response, wantStatus int) string {
	b.t.Helper()
	ReadBody(b.t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("status %d, want 303", resp.StatusCode)
	}
	return ExpectStatus(b.t, b.Do(http.MethodGet, resp.Header.Get("Location"), "", nil), wantStatus)
}

// ReadBody reads and closes the response's body.
func ReadBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ExpectStatus reads the response's body and fails the test unless the
// status is want.
func ExpectStatus(t testing.TB, resp *http.Response, want int) string {
	t.Helper()
	body := ReadBody(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.600s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
	return body
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)"`)

// HiddenFields returns the hidden form fields of one of the gateway's pages
// (login, continue, logout, error).
func HiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}
