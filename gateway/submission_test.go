package gateway_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// shopApp answers like a Java app under a context path: its session cookie
// is scoped to /shop (Tomcat's JSESSIONID), and it refuses an order
// without it.
func shopApp(w http.ResponseWriter, r *http.Request, got gatewaytest.Request) {
	if r.Method == http.MethodGet {
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "shop-session-1", Path: "/shop", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		_, _ = w.Write([]byte("cart page"))
		return
	}
	if c, err := r.Cookie("JSESSIONID"); err != nil || c.Value != "shop-session-1" {
		http.Error(w, "no shop session: order refused", http.StatusForbidden)
		return
	}
	_, _ = w.Write([]byte("order accepted"))
}

// expireGatewaySession drops the gateway's cookie from the browser, as if
// the session had ended while the person was on the app's page.
func expireGatewaySession(t *testing.T, b *gatewaytest.Browser, base string) {
	t.Helper()
	u, _ := url.Parse(base)
	b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "postern", Value: "", Path: "/", MaxAge: -1}})
}

// setRootCookie puts an app cookie for / in the browser's jar.
func setRootCookie(t *testing.T, b *gatewaytest.Browser, base, name, value string) {
	t.Helper()
	u, _ := url.Parse(base)
	b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// checkReplayCookies checks the Cookie header the app got with the replay:
// the path-scoped session of the submission, the submission's value where
// the browser's changed since, cookies the submission did not have, and
// never the gateway's own.
func checkReplayCookies(t *testing.T, sub gatewaytest.Request) {
	t.Helper()
	cookies := map[string][]string{}
	for _, c := range (&http.Request{Header: sub.Header}).Cookies() {
		cookies[c.Name] = append(cookies[c.Name], c.Value)
	}
	if got := cookies["JSESSIONID"]; len(got) != 1 || got[0] != "shop-session-1" {
		t.Errorf("replay's JSESSIONID = %v, want the path-scoped shop-session-1 of the submission (Cookie: %q)", got, sub.Header.Get("Cookie"))
	}
	if got := cookies["cart"]; len(got) != 1 || got[0] != "at-submission" {
		t.Errorf("replay's cart cookie = %v, want the submission's value only", got)
	}
	if got := cookies["late"]; len(got) != 1 || got[0] != "1" {
		t.Errorf("replay's late cookie = %v, want the one the browser sends at completion", got)
	}
	if _, ok := cookies["postern"]; ok {
		t.Errorf("the gateway's own cookie reached the app: %q", sub.Header.Get("Cookie"))
	}
}

// The app's cookies at submission reach it with the replay, including one
// scoped to the app's path, which the browser never sends to /.postern/.
func TestReplayCarriesSubmissionCookiesLocalLogin(t *testing.T) {
	e := newEnv(t)
	e.up.SetAnswer(shopApp)
	b := e.browser()
	// Logged in, the person opens the shop, which starts its own session.
	lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login?rd=/shop/cart", "", nil), http.StatusOK)
	b.Follow(b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword), http.StatusOK)
	setRootCookie(t, b, e.gw.URL, "cart", "at-submission")

	expireGatewaySession(t, b, e.gw.URL)
	fields := b.SubmitWhileLoggedOut(http.MethodPost, "/shop/order", "application/x-www-form-urlencoded", []byte("item=tea"))
	// Between the submission and the login the browser's root cookies
	// change (another tab); the submission's value is the one the order
	// was made with.
	setRootCookie(t, b, e.gw.URL, "cart", "changed-later")
	setRootCookie(t, b, e.gw.URL, "late", "1")
	page := b.Follow(b.Login(fields, testUser, testPassword), http.StatusOK)
	if page != "order accepted" {
		t.Fatalf("the app answered %q, want the order accepted", page)
	}
	subs := e.up.Submissions()
	if len(subs) != 1 {
		t.Fatalf("app got %d submissions, want 1", len(subs))
	}
	checkReplayCookies(t, subs[0])
}

// The same after an OIDC round trip: the callback comes back from the
// provider, cross-site, and the browser sends no path-scoped or
// SameSite=Strict cookie with it.
func TestReplayCarriesSubmissionCookiesOIDC(t *testing.T) {
	e, idp := newOIDCEnv(t, nil)
	e.up.SetAnswer(shopApp)
	b := e.browser()
	// The shop's session exists from an earlier visit.
	u, _ := url.Parse(e.gw.URL + "/shop/")
	b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "JSESSIONID", Value: "shop-session-1", Path: "/shop"}})
	setRootCookie(t, b, e.gw.URL, "cart", "at-submission")

	resp := b.Do(http.MethodPost, "/shop/order", "application/x-www-form-urlencoded", []byte("item=tea"))
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("submission without a session: %d, want 307", resp.StatusCode)
	}
	cb := loginAtProvider(t, idp, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "application/x-www-form-urlencoded", []byte("item=tea")))
	setRootCookie(t, b, e.gw.URL, "cart", "changed-later")
	setRootCookie(t, b, e.gw.URL, "late", "1")
	if page := b.Follow(b.Do(http.MethodGet, cb.RequestURI(), "", nil), http.StatusOK); page != "order accepted" {
		t.Fatalf("the app answered %q, want the order accepted", page)
	}
	subs := e.up.Submissions()
	if len(subs) != 1 {
		t.Fatalf("app got %d submissions, want 1", len(subs))
	}
	checkReplayCookies(t, subs[0])
}

// idempotencyKey is an Idempotency-Key header as the gateway sends it: a
// structured-field string of an opaque id.
var idempotencyKey = regexp.MustCompile(`^"[A-Za-z0-9_-]{22,}"$`)

// keyRecorder is a transport that records the Idempotency-Key of every
// send to the upstream, and refuses the first ones without writing
// anything, as an upstream that is down does.
type keyRecorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	keys   []string
	refuse int
}

func (k *keyRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	k.mu.Lock()
	k.keys = append(k.keys, r.Header.Get("Idempotency-Key"))
	refuse := k.refuse > 0
	k.refuse--
	k.mu.Unlock()
	if refuse {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("dial tcp: connection refused")
	}
	return k.next.RoundTrip(r)
}

// Every replay carries an Idempotency-Key: the same for every send of one
// submission (here a send refused by the upstream, then the retry), and
// another for another submission. A key the client sent is not passed on.
func TestReplayCarriesIdempotencyKey(t *testing.T) {
	rec := &keyRecorder{next: gateway.NewTransport(), refuse: 1}
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir(), transport: rec}
	e.start()
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/pay", "application/x-www-form-urlencoded", []byte("amount=10"))
	page := gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusBadGateway)
	retry := gatewaytest.HiddenFields(page)
	b.Follow(b.Do(http.MethodPost, "/.postern/resume", "application/x-www-form-urlencoded", []byte(retry.Encode())), http.StatusOK)

	// A second submission, with a key of the client's own.
	expireGatewaySession(t, b, e.gw.URL)
	resp := b.Do(http.MethodPost, "/pay", "application/x-www-form-urlencoded", []byte("amount=20"), "Idempotency-Key", `"client-chosen"`)
	gatewaytest.ReadBody(t, resp)
	lp := gatewaytest.ExpectStatus(t, b.FollowToLogin(http.MethodPost, resp.Header.Get("Location"), "application/x-www-form-urlencoded", []byte("amount=20")), http.StatusOK)
	b.Follow(b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword), http.StatusOK)

	subs := e.up.Submissions()
	if len(subs) != 2 {
		t.Fatalf("app got %d submissions, want 2", len(subs))
	}
	first, second := subs[0].Header.Get("Idempotency-Key"), subs[1].Header.Get("Idempotency-Key")
	for _, k := range []string{first, second} {
		if !idempotencyKey.MatchString(k) {
			t.Errorf("Idempotency-Key %q is not a structured-field string of an opaque id", k)
		}
	}
	if first == second {
		t.Errorf("two submissions carried the same Idempotency-Key %s", first)
	}
	rec.mu.Lock()
	sends := append([]string(nil), rec.keys...)
	rec.mu.Unlock()
	// The login's own requests do not reach the transport; the sends are
	// the refused one, its retry, and the second submission.
	var replays []string
	for _, k := range sends {
		if k != "" {
			replays = append(replays, k)
		}
	}
	if len(replays) != 3 || replays[0] != first || replays[1] != first || replays[2] != second {
		t.Errorf("keys of the sends = %q, want the first submission's key twice (refused, then retried), then the second's", replays)
	}
	if strings.Contains(second, "client-chosen") {
		t.Error("the client's own Idempotency-Key was replayed")
	}
}
