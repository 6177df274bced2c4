package gateway_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// One browser may keep only so many submissions waiting; one more gets a
// page saying so, and logging in still sends the waiting ones.
func TestPendingSubmissionsPerBrowser(t *testing.T) {
	e := newEnv(t, func(o *gateway.Options) { o.StashMaxPending = 2 })
	b := e.browser()
	first := b.SubmitWhileLoggedOut(http.MethodPost, "/a", "text/plain", []byte("1"))
	b.SubmitWhileLoggedOut(http.MethodPost, "/b", "text/plain", []byte("2"))
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/c", "text/plain", []byte("3")), http.StatusTooManyRequests)
	if !strings.Contains(page, "2 submissions waiting") {
		t.Fatalf("429 page does not say why:\n%s", page)
	}
	// Another browser is not affected.
	e.browser().SubmitWhileLoggedOut(http.MethodPost, "/d", "text/plain", []byte("4"))
	// A replay frees its place.
	b.Follow(b.Login(first, testUser, testPassword), http.StatusOK)
	gatewaytest.ReadBody(t, b.Do(http.MethodPost, "/.postern/logout", "application/x-www-form-urlencoded", []byte("csrf="+first.Get("csrf"))))
	b.SubmitWhileLoggedOut(http.MethodPost, "/e", "text/plain", []byte("5"))
}

// Past the store's budget, new submissions are refused with a page that
// says so; logged-in traffic goes on.
func TestStoreBudget(t *testing.T) {
	e := newEnv(t, func(o *gateway.Options) { o.StoreBudget = 1 })
	b := e.browser()
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/a", "text/plain", bytes.Repeat([]byte("x"), 100)), http.StatusServiceUnavailable)
	if !strings.Contains(page, "cannot keep more submissions") {
		t.Fatalf("503 page does not say why:\n%s", page)
	}
	lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	b.Follow(b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword), http.StatusOK)
	gatewaytest.ExpectStatus(t, b.Do(http.MethodPost, "/a", "text/plain", []byte("logged in")), http.StatusOK)
	if got := e.up.Submissions(); len(got) != 1 || string(got[0].Body) != "logged in" {
		t.Fatalf("upstream: %+v", got)
	}
}
