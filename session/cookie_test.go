package session_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/session"
)

func newCookies(t *testing.T, opts session.CookieOptions) *session.Cookies {
	t.Helper()
	if opts.Secrets == nil {
		opts.Secrets = [][]byte{secret(1)}
	}
	c, err := session.NewCookies(opts)
	if err != nil {
		t.Fatalf("NewCookies: %v", err)
	}
	return c
}

// save writes ck and returns the Set-Cookie header and the cookie as a
// browser would send it back.
func save(t *testing.T, c *session.Cookies, ck *session.Cookie) (string, *http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := c.Save(rec, httptest.NewRequest("GET", "/", nil), ck); err != nil {
		t.Fatalf("Save: %v", err)
	}
	res := rec.Result()
	if len(res.Cookies()) != 1 {
		t.Fatalf("Save set %d cookies, want 1", len(res.Cookies()))
	}
	return res.Header.Get("Set-Cookie"), res.Cookies()[0]
}

func load(c *session.Cookies, hc *http.Cookie) *session.Cookie {
	r := httptest.NewRequest("GET", "/", nil)
	if hc != nil {
		r.AddCookie(&http.Cookie{Name: hc.Name, Value: hc.Value})
	}
	return c.Load(r)
}

func TestCookieRoundTrip(t *testing.T) {
	c := newCookies(t, session.CookieOptions{Secure: true})
	fresh := load(c, nil)
	if !fresh.IsNew || fresh.BrowserID == "" || fresh.CSRF == "" || fresh.BrowserID == fresh.CSRF || fresh.SID != "" {
		t.Fatalf("Load without a cookie = %+v; want IsNew with a BrowserID and a different CSRF", fresh)
	}
	fresh.SID = "server-session"
	if err := fresh.AddResult(session.ResultRef{URL: "/checkout?x=1", ID: "r1"}); err != nil {
		t.Fatal(err)
	}
	header, hc := save(t, c, fresh)
	for _, attr := range []string{"Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age=604800"} {
		if !strings.Contains(header, attr) {
			t.Errorf("Set-Cookie %q lacks %s", header, attr)
		}
	}
	for _, secretPart := range []string{"server-session", fresh.BrowserID, fresh.CSRF, "checkout"} {
		if strings.Contains(header, secretPart) {
			t.Errorf("the cookie shows %q in the clear", secretPart)
		}
	}
	got := load(c, hc)
	if got.IsNew || got.SID != "server-session" || got.BrowserID != fresh.BrowserID || got.CSRF != fresh.CSRF ||
		len(got.Results) != 1 || got.Results[0] != (session.ResultRef{URL: "/checkout?x=1", ID: "r1"}) {
		t.Fatalf("Load = %+v, want %+v", got, fresh)
	}
}

func TestCookieOptions(t *testing.T) {
	c := newCookies(t, session.CookieOptions{Name: "gw", Path: "/app", MaxAge: time.Hour})
	header, _ := save(t, c, load(c, nil))
	for _, want := range []string{"gw=", "Path=/app", "Max-Age=3600", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(header, want) {
			t.Errorf("Set-Cookie %q lacks %s", header, want)
		}
	}
	if strings.Contains(header, "Secure") {
		t.Errorf("Set-Cookie %q is Secure without the option", header)
	}
	for name, opts := range map[string]session.CookieOptions{
		"no secret":    {},
		"short secret": {Secrets: [][]byte{[]byte("short")}},
		"tiny max age": {Secrets: [][]byte{secret(1)}, MaxAge: time.Millisecond},
	} {
		if _, err := session.NewCookies(opts); err == nil {
			t.Errorf("%s: NewCookies accepted it", name)
		}
	}
}

func TestCookieTamperedOrForeign(t *testing.T) {
	c := newCookies(t, session.CookieOptions{})
	orig := load(c, nil)
	orig.SID = "s"
	_, hc := save(t, c, orig)

	mid := len(hc.Value) / 2
	flipped := hc.Value[:mid] + string(hc.Value[mid]^1) + hc.Value[mid+1:]
	cases := map[string]string{
		"flipped":   flipped,
		"truncated": hc.Value[:len(hc.Value)-4],
		"garbage":   "not-a-cookie",
		"empty":     "",
	}
	other := newCookies(t, session.CookieOptions{Secrets: [][]byte{secret(9)}})
	_, foreign := save(t, other, load(other, nil))
	cases["other secret"] = foreign.Value
	for name, value := range cases {
		got := load(c, &http.Cookie{Name: hc.Name, Value: value})
		if !got.IsNew || got.SID != "" || got.BrowserID == "" || got.BrowserID == orig.BrowserID || got.CSRF == "" {
			t.Errorf("%s cookie: Load = %+v; want a fresh cookie", name, got)
		}
	}
}

func TestCookieRotation(t *testing.T) {
	old := newCookies(t, session.CookieOptions{Secrets: [][]byte{secret(1)}})
	rotated := newCookies(t, session.CookieOptions{Secrets: [][]byte{secret(2), secret(1)}})
	onlyNew := newCookies(t, session.CookieOptions{Secrets: [][]byte{secret(2)}})

	ck := load(old, nil)
	ck.SID = "kept"
	_, hcOld := save(t, old, ck)
	if got := load(rotated, hcOld); got.IsNew || got.SID != "kept" || got.BrowserID != ck.BrowserID {
		t.Fatalf("rotated Cookies reading an old cookie = %+v", got)
	}
	_, hcNew := save(t, rotated, ck)
	if got := load(onlyNew, hcNew); got.IsNew || got.SID != "kept" {
		t.Fatalf("rotated Cookies did not write with the newest secret: %+v", got)
	}
	if got := load(old, hcNew); !got.IsNew {
		t.Fatal("a cookie written after rotation opened with only the old secret")
	}
}

func TestCookieStaysSmall(t *testing.T) {
	c := newCookies(t, session.CookieOptions{Secure: true})
	ck := load(c, nil)
	ck.SID = session.NewID()
	for i := range session.MaxResults {
		url := fmt.Sprintf("/%d/", i) + strings.Repeat("p", 200)
		if err := ck.AddResult(session.ResultRef{URL: url[:200], ID: session.NewID()}); err != nil {
			t.Fatal(err)
		}
	}
	header, hc := save(t, c, ck)
	t.Logf("Set-Cookie with %d results of 200-byte URLs: %d bytes", session.MaxResults, len(header))
	if len(header) >= 4096 {
		t.Fatalf("Set-Cookie with %d results of 200-byte URLs is %d bytes, want under 4096", session.MaxResults, len(header))
	}
	if got := load(c, hc); len(got.Results) != session.MaxResults {
		t.Fatalf("%d results came back, want %d", len(got.Results), session.MaxResults)
	}

	// Longest URLs: Save drops the oldest until the cookie fits.
	ck.Results = nil
	for i := range session.MaxResults {
		url := fmt.Sprintf("/%d/", i) + strings.Repeat("q", session.MaxResultURLLen)
		if err := ck.AddResult(session.ResultRef{URL: url[:session.MaxResultURLLen], ID: session.NewID()}); err != nil {
			t.Fatal(err)
		}
	}
	newest := ck.Results[len(ck.Results)-1]
	header, hc = save(t, c, ck)
	if len(header) > 4096 {
		t.Fatalf("Set-Cookie is %d bytes, want at most 4096", len(header))
	}
	got := load(c, hc)
	if len(got.Results) == 0 || len(got.Results) == session.MaxResults || got.Results[len(got.Results)-1] != newest {
		t.Fatalf("after Save of 8 long URLs: %d results kept; want some, the newest last, and fewer than 8", len(got.Results))
	}
}

func TestResultRefLimits(t *testing.T) {
	var ck session.Cookie
	for i := range 10 {
		if err := ck.AddResult(session.ResultRef{URL: "/u", ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ck.Results) != session.MaxResults || ck.Results[0].ID != "2" || ck.Results[7].ID != "9" {
		t.Fatalf("after 10 AddResult: %v; want the newest 8", ck.Results)
	}
	long := session.ResultRef{URL: "/" + strings.Repeat("x", session.MaxResultURLLen), ID: "x"}
	if err := ck.AddResult(long); !errors.Is(err, session.ErrURLTooLong) {
		t.Fatalf("AddResult with a %d-byte URL: err = %v, want ErrURLTooLong", len(long.URL), err)
	}
	ck.Results = append(ck.Results, long)
	c := newCookies(t, session.CookieOptions{})
	if err := c.Save(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), &ck); !errors.Is(err, session.ErrURLTooLong) {
		t.Fatalf("Save with a too long URL: err = %v, want ErrURLTooLong", err)
	}

	ck = session.Cookie{}
	_ = ck.AddResult(session.ResultRef{URL: "/a", ID: "1"})
	_ = ck.AddResult(session.ResultRef{URL: "/b", ID: "2"})
	_ = ck.AddResult(session.ResultRef{URL: "/a", ID: "3"})
	if ref, ok := ck.TakeResult("/a"); !ok || ref.ID != "3" {
		t.Fatalf("TakeResult(/a) = %v, %v; want the newest, 3", ref, ok)
	}
	if ref, ok := ck.TakeResult("/a"); !ok || ref.ID != "1" {
		t.Fatalf("second TakeResult(/a) = %v, %v; want 1", ref, ok)
	}
	if _, ok := ck.TakeResult("/a"); ok || len(ck.Results) != 1 {
		t.Fatalf("third TakeResult(/a) found one; left %v", ck.Results)
	}
}

// A cookie of the same name planted in front of the real one (a sibling
// subdomain setting it with a narrower Path) does not hide the real one.
func TestCookiePlantedInFront(t *testing.T) {
	c := newCookies(t, session.CookieOptions{})
	ck := load(c, nil)
	ck.SID = "session-id"
	_, hc := save(t, c, ck)
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: hc.Name, Value: "planted"})
	r.AddCookie(&http.Cookie{Name: hc.Name, Value: hc.Value})
	if got := c.Load(r); got.IsNew || got.SID != "session-id" {
		t.Fatalf("Load with a planted cookie first: %+v", got)
	}
}

// Over https the default name carries the __Host- prefix.
func TestCookieHostPrefixWhenSecure(t *testing.T) {
	header, _ := save(t, newCookies(t, session.CookieOptions{Secure: true}), load(newCookies(t, session.CookieOptions{}), nil))
	if !strings.HasPrefix(header, "__Host-postern=") || !strings.Contains(header, "Secure") || !strings.Contains(header, "Path=/") {
		t.Fatalf("Set-Cookie %q", header)
	}
}
