package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session/redisstore"
	"github.com/postern/postern/session/redisstore/redistest"
)

// TestRedisOutageFailsClosedAndRecovers kills the gateway's Redis: a
// logged-in request and an unauthenticated submission both get 503 (fail
// closed: nothing proxied, nothing kept) and readyz says 503. With Redis
// back on the same port and append-only file, the same gateway process
// recovers by itself: readyz is 200 and a submission stashed before the
// outage completes and replays once.
//
// It always starts its own redis-server (it has to kill it), even when
// POSTERN_TEST_REDIS_URL is set.
func TestRedisOutageFailsClosedAndRecovers(t *testing.T) {
	// fsync every write: a kill right after the stash must not lose it.
	rds := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	up := newRecorder(t)
	g := newSetup(t, up.URL, rds.URL()).start(t)

	logged := newBrowser(t)
	loginOnly(t, logged.At(g.base))
	gatewaytest.ExpectStatus(t, logged.Do(http.MethodGet, g.base+"/hello", "", nil), http.StatusOK)
	pending := newBrowser(t)
	f := pending.At(g.base).SubmitWhileLoggedOut(http.MethodPost, "/before-outage", formType, []byte("keep=me"))
	gatewaytest.ExpectStatus(t, newBrowser(t).Do(http.MethodGet, g.base+"/.postern/readyz", "", nil), http.StatusOK)

	rds.Kill(t)
	// A gateway may use a session record it read less than
	// redisstore.StaleBound ago (until it notices the broken connection and
	// forgets them all); past the bound it never does. Fail closed after it.
	time.Sleep(redisstore.StaleBound)
	outageStart := time.Now()

	page := gatewaytest.ExpectStatus(t, logged.Do(http.MethodGet, g.base+"/hello", "", nil), http.StatusServiceUnavailable)
	if !strings.Contains(page, "cannot reach its store") {
		t.Errorf("503 page with a session:\n%.600s", page)
	}
	stranger := newBrowser(t)
	resp := stranger.Do(http.MethodPost, g.base+"/during-outage", formType, []byte("lost=yes"))
	page = gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "Nothing you sent was kept") {
		t.Errorf("submission without a session during the outage: status %d, want 503:\n%.600s", resp.StatusCode, page)
	}
	gatewaytest.ExpectStatus(t, newBrowser(t).Do(http.MethodGet, g.base+"/.postern/readyz", "", nil), http.StatusServiceUnavailable)
	for _, s := range up.Submissions() {
		t.Errorf("the upstream got %s %s during the outage", s.Method, s.URI)
	}

	// With go-redis defaults (retries, dial retries) each 503 takes a few
	// seconds; see docs/deployment.md for tuning it in the store URL.
	t.Logf("the three answers during the outage (two 503 pages, readyz) took %v", time.Since(outageStart))
	rds.Restart(t)

	ready := waitFor(10*time.Second, func() bool {
		resp := newBrowser(t).Do(http.MethodGet, g.base+"/.postern/readyz", "", nil)
		gatewaytest.ReadBody(t, resp)
		return resp.StatusCode == http.StatusOK
	})
	if !ready {
		t.Fatalf("readyz not 200 within 10s of Redis coming back; log:\n%s", g.out.String())
	}
	resp = pending.At(g.base).Login(f, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/before-outage" {
		t.Fatalf("login after the outage: status %d, Location %q; want 303 to /before-outage\n%s", resp.StatusCode, resp.Header.Get("Location"), g.out.String())
	}
	page = gatewaytest.ExpectStatus(t, pending.Do(http.MethodGet, g.base+"/before-outage", "", nil), http.StatusOK)
	if !strings.Contains(page, "POST /before-outage user=alice replayed=true") {
		t.Errorf("result after the outage:\n%.600s", page)
	}
	gatewaytest.ExpectStatus(t, logged.Do(http.MethodGet, g.base+"/hello", "", nil), http.StatusOK)

	got := up.Submissions()
	if len(got) != 1 || got[0].URI != "/before-outage" || string(got[0].Body) != "keep=me" {
		t.Errorf("upstream submissions %+v, want /before-outage once", got)
	}
}
