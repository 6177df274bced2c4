package gateway_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
)

// skewClock is the real time plus an offset the test moves forward: leases
// lapse without the test sleeping for them.
type skewClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *skewClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *skewClock) Skip(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// newRecoveryEnv is a gateway whose store and own clock are clk, and the
// store itself, for the test to act as a sender that died.
func newRecoveryEnv(t *testing.T, st testStore, clk *skewClock, opts ...envOption) (*env, *session.Store) {
	t.Helper()
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir(), openBackend: st.open(t)}
	var store *session.Store
	e.parts = func(p *gateway.Parts, _ *gateway.Options) {
		sealer, err := session.NewSealer([][]byte{testSecret})
		if err != nil {
			t.Fatal(err)
		}
		store = session.NewStore(e.backend, sealer, session.WithStoreClock(clk.Now))
		p.Store, p.Now = store, clk.Now
	}
	e.start(opts...)
	return e, store
}

// browserID is the id of b's browser, as the gateway's cookie holds it.
func browserID(t *testing.T, e *env, b *gatewaytest.Browser) string {
	t.Helper()
	cookies, err := session.NewCookies(session.CookieOptions{Name: "postern", Secrets: [][]byte{testSecret}, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(e.gw.URL)
	r, _ := http.NewRequest(http.MethodGet, e.gw.URL, nil)
	for _, c := range b.Client.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	ck := cookies.Load(r)
	if ck.IsNew {
		t.Fatal("the browser has no gateway cookie")
	}
	return ck.BrowserID
}

// A sender that died after taking the stash and before sending anything
// (its lease lapses): until the lapse the person sees that it is being
// sent, on a page that reloads itself; after it, their next step sends it,
// once.
func TestLapsedLeaseIsTakenAtTheNextStep(t *testing.T) {
	onEachStore(t, func(t *testing.T, st testStore) {
		clk := &skewClock{}
		e, store := newRecoveryEnv(t, st, clk)
		b := e.browser()
		f := b.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("order=5"))
		// The sender that dies: it leases the stash and is gone.
		_, body, _, err := store.Lease(context.Background(), f.Get("stash"), browserID(t, e, b), "dead-sender", session.MaxLease)
		if err != nil {
			t.Fatal(err)
		}
		body.Close()

		resp := b.Login(f, testUser, testPassword)
		gatewaytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout" {
			t.Fatalf("login while another sender holds the lease: %d %q, want 303 /checkout", resp.StatusCode, resp.Header.Get("Location"))
		}
		sending := b.Do(http.MethodGet, "/checkout", "", nil)
		page := gatewaytest.ReadBody(t, sending)
		if sending.StatusCode != http.StatusAccepted || sending.Header.Get("Refresh") == "" || !strings.Contains(page, "being sent") {
			t.Fatalf("while the lease is live: %d Refresh %q:\n%s", sending.StatusCode, sending.Header.Get("Refresh"), page)
		}
		if n := len(e.up.Submissions()); n != 0 {
			t.Fatalf("the app got %d submissions while the lease was live", n)
		}
		clk.Skip(session.MaxLease + time.Second)
		// The page reloads itself: now the lapsed lease is taken and sent.
		resp = b.Do(http.MethodGet, "/checkout", "", nil)
		gatewaytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout" {
			t.Fatalf("reload after the lapse: %d %q, want 303 to the result", resp.StatusCode, resp.Header.Get("Location"))
		}
		if page := b.Follow(resp, http.StatusOK); !strings.Contains(page, "app answer #1: POST /checkout") {
			t.Fatalf("result after recovery:\n%s", page)
		}
		if n := len(e.up.Submissions()); n != 1 {
			t.Fatalf("the app got %d submissions, want 1", n)
		}
		// Once more: the answer was shown, the app's own page follows.
		gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/checkout", "", nil), http.StatusOK)
		if n := len(e.up.Submissions()); n != 1 {
			t.Fatalf("the app got %d submissions, want 1", n)
		}
	})
}

// cutOnce is an upstream that reads the first submission and then drops
// the connection without an answer: the submission may have arrived.
func cutOnce(e *env) *atomic.Int32 {
	var cut atomic.Int32
	e.up.SetAnswer(func(w http.ResponseWriter, r *http.Request, got gatewaytest.Request) {
		if r.Method == http.MethodPost && cut.Add(1) == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		gatewaytest.Echo(w, r, got)
	})
	return &cut
}

// A send cut after the request was written is never sent again on its
// own: the person sees what and when, and chooses. "Send it again" sends
// it with the same Idempotency-Key; afterwards nothing more is sent.
func TestAmbiguousSubmissionSendItAgain(t *testing.T) {
	onEachStore(t, func(t *testing.T, st testStore) {
		e := st.env(t)
		cutOnce(e)
		b := e.browser()
		f := b.SubmitWhileLoggedOut(http.MethodPost, "/pay?x=secret", "application/x-www-form-urlencoded", []byte("amount=100"))
		page := gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusBadGateway)
		for _, want := range []string{"may have been received", "POST /pay", "handed to the application at", "Send it again", "Discard"} {
			if !strings.Contains(page, want) {
				t.Errorf("ambiguous page lacks %q:\n%s", want, page)
			}
		}
		if strings.Contains(page, "POST /pay?x=secret") {
			t.Errorf("the ambiguous page shows the query:\n%s", page)
		}
		// Coming back (the login form sent again) shows the same choice, and
		// sends nothing.
		again := gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusConflict)
		if !strings.Contains(again, "Send it again") {
			t.Fatalf("coming back to an ambiguous submission:\n%s", again)
		}
		if n := len(e.up.Submissions()); n != 1 {
			t.Fatalf("the app got %d submissions before the choice, want 1", n)
		}
		form := formFields(t, again, "/.postern/resend")
		resp := b.Do(http.MethodPost, "/.postern/resend", "application/x-www-form-urlencoded", []byte(form.Encode()))
		if got := b.Follow(resp, http.StatusOK); !strings.Contains(got, "app answer #2: POST /pay?x=secret") {
			t.Fatalf("after Send it again:\n%s", got)
		}
		subs := e.up.Submissions()
		if len(subs) != 2 {
			t.Fatalf("the app got %d submissions, want 2 (the cut one, the one sent again)", len(subs))
		}
		k1, k2 := subs[0].Header.Get("Idempotency-Key"), subs[1].Header.Get("Idempotency-Key")
		if k1 == "" || k1 != k2 {
			t.Errorf("Idempotency-Key of the sends: %q and %q, want the same", k1, k2)
		}
		// The button once more sends nothing.
		resp = b.Do(http.MethodPost, "/.postern/resend", "application/x-www-form-urlencoded", []byte(form.Encode()))
		gatewaytest.ReadBody(t, resp)
		if n := len(e.up.Submissions()); n != 2 {
			t.Fatalf("a second Send it again sent it again: %d submissions", n)
		}
	})
}

// "Discard" settles an ambiguous submission: it is not sent again, and a
// later login says it was discarded.
func TestAmbiguousSubmissionDiscard(t *testing.T) {
	onEachStore(t, func(t *testing.T, st testStore) {
		e := st.env(t)
		cutOnce(e)
		b := e.browser()
		f := b.SubmitWhileLoggedOut(http.MethodPost, "/pay", "application/x-www-form-urlencoded", []byte("amount=100"))
		page := gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusBadGateway)
		form := formFields(t, page, "/.postern/discard")
		// Without the CSRF token of this browser nothing happens.
		forged := url.Values{"stash": {form.Get("stash")}, "csrf": {"forged"}}
		gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/.postern/discard", "application/x-www-form-urlencoded", []byte(forged.Encode())), http.StatusForbidden)
		done := gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/.postern/discard", "application/x-www-form-urlencoded", []byte(form.Encode())), http.StatusOK)
		if !strings.Contains(done, "discarded") {
			t.Fatalf("discard page:\n%s", done)
		}
		later := gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusGone)
		if !strings.Contains(later, "discard") {
			t.Fatalf("login after discarding:\n%s", later)
		}
		resend := formFields(t, page, "/.postern/resend")
		gatewaytest.ReadBody(t, b.Do(http.MethodPost, "/.postern/resend", "application/x-www-form-urlencoded", []byte(resend.Encode())))
		if n := len(e.up.Submissions()); n != 1 {
			t.Fatalf("the app got %d submissions, want only the cut one", n)
		}
	})
}

// On a route whose app honours Idempotency-Key the gateway sends an
// ambiguous submission again itself, with the same key.
func TestIdempotentRouteResendsItself(t *testing.T) {
	onEachStore(t, func(t *testing.T, st testStore) {
		e := st.env(t, func(o *gateway.Options) { o.Routes[0].IdempotentResend = true })
		cutOnce(e)
		b := e.browser()
		f := b.SubmitWhileLoggedOut(http.MethodPost, "/pay", "application/x-www-form-urlencoded", []byte("amount=100"))
		gatewaytest.ExpectStatus(t, b.Login(f, testUser, testPassword), http.StatusBadGateway)
		resp := b.Login(f, testUser, testPassword)
		if got := b.Follow(resp, http.StatusOK); !strings.Contains(got, "app answer #2: POST /pay") {
			t.Fatalf("coming back on an idempotent route:\n%s", got)
		}
		subs := e.up.Submissions()
		if len(subs) != 2 || subs[0].Header.Get("Idempotency-Key") != subs[1].Header.Get("Idempotency-Key") {
			t.Fatalf("sends: %d, keys must match", len(subs))
		}
	})
}

// formFields returns the hidden fields of the form of page that posts to
// action.
func formFields(t *testing.T, page, action string) url.Values {
	t.Helper()
	i := strings.Index(page, `action="`+action+`"`)
	if i < 0 {
		t.Fatalf("no form to %s on the page:\n%s", action, page)
	}
	rest := page[i:]
	if j := strings.Index(rest, "</form>"); j >= 0 {
		rest = rest[:j]
	}
	return gatewaytest.HiddenFields(rest)
}
