package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session/redisstore/redistest"
)

// stores are the two stores a gateway restarts on: the embedded file,
// reused by the next process, and Redis.
var stores = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"file", func(t *testing.T) string { return "file:" + filepath.Join(t.TempDir(), "store") }},
	{"redis", func(t *testing.T) string { return redistest.URLForTest(t) }},
}

// TestRestartKeepsPendingSubmissions: five browsers each leave a submission
// pending at the login; the gateway is killed (SIGKILL) and started again
// on the same store; every login then replays its submission exactly once.
func TestRestartKeepsPendingSubmissions(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			up := newRecorder(t)
			s := newSetup(t, up.URL, st.url(t))
			g := s.start(t)

			const n = 5
			browsers := make([]*gatewaytest.Browser, n)
			fields := make([]map[string][]string, n)
			for i := range n {
				browsers[i] = newBrowser(t)
				fields[i] = browsers[i].At(g.base).SubmitWhileLoggedOut(http.MethodPost, fmt.Sprintf("/order/%d", i), formType, fmt.Appendf(nil, "order=%d", i))
			}
			g.kill(t)
			// Another port: Go's cookie jar, like a browser, scopes cookies
			// by host and not by port, so the browsers keep their cookies.
			g = s.start(t)

			for i, b := range browsers {
				path := fmt.Sprintf("/order/%d", i)
				resp := b.At(g.base).Login(fields[i], procUser, procPassword)
				gatewaytest.ReadBody(t, resp)
				if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path {
					t.Fatalf("login %d after the restart: status %d, Location %q; want 303 to %s", i, resp.StatusCode, resp.Header.Get("Location"), path)
				}
				page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, g.base+path, "", nil), http.StatusOK)
				if !strings.Contains(page, "POST "+path+" user=alice replayed=true") {
					t.Errorf("result of %s:\n%.400s", path, page)
				}
			}
			counts := countByURI(up)
			for i := range n {
				if c := counts[fmt.Sprintf("/order/%d", i)]; c != 1 {
					t.Errorf("/order/%d replayed %d times, want 1", i, c)
				}
			}
			if len(counts) != n {
				t.Errorf("upstream got submissions for %v, want only the %d orders", counts, n)
			}
		})
	}
}

// TestKillDuringCompletions kills the gateway while 50 completions of ten
// pending submissions race, with the upstream holding the replays that
// reached it, then restarts it on the same store and has the person come
// back to every submission. Nothing is lost and nothing is sent twice: a
// submission taken but not yet handed to the app before the kill is sent
// once after its lease lapsed; one handed to the app (it may have reached
// it) is never sent again on its own: the person is asked, and sends it
// again only if the app does not have it. In the end the upstream has got
// every submission exactly once.
func TestKillDuringCompletions(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			up := newRecorder(t)
			arrived := make(chan struct{}, 100)
			release := make(chan struct{})
			up.SetAnswer(func(w http.ResponseWriter, r *http.Request, got gatewaytest.Request) {
				if r.Method != http.MethodGet && r.Method != http.MethodHead {
					arrived <- struct{}{}
					select { // hold the replay until the gateway is dead
					case <-release:
					case <-time.After(20 * time.Second):
					}
				}
				gatewaytest.Echo(w, r, got)
			})
			s := newSetup(t, up.URL, st.url(t))
			g := s.start(t)

			const stashes, perStash = 10, 5
			b := newBrowser(t)
			fields := make([]map[string][]string, stashes)
			for i := range stashes {
				fields[i] = b.At(g.base).SubmitWhileLoggedOut(http.MethodPost, fmt.Sprintf("/tab/%d", i), formType, fmt.Appendf(nil, "tab=%d", i))
			}
			loginOnly(t, b.At(g.base))
			cont := make([][]byte, stashes)
			for i := range stashes {
				cont[i] = continueFields(t, b.At(g.base), fields[i])
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for j := range stashes * perStash {
				i := j / perStash
				wg.Go(func() {
					// Later tabs start later, so the kill finds some
					// stashes replayed, some taken, some still pending.
					time.Sleep(time.Duration(i) * 3 * time.Millisecond)
					resp, err := b.Send(ctx, http.MethodPost, g.base+"/.postern/resume", formType, strings.NewReader(string(cont[i])), int64(len(cont[i])))
					if err == nil { // after the kill, errors are expected
						resp.Body.Close()
					}
				})
			}
			for k := 0; k < 3; k++ {
				select {
				case <-arrived:
				case <-ctx.Done():
					t.Fatal("no replay reached the upstream")
				}
			}
			g.kill(t)
			close(release)
			wg.Wait()
			before := countByURI(up)

			g = s.start(t)
			var sentBefore, askedAfter, completedAfter int
			for i := range stashes {
				uri := fmt.Sprintf("/tab/%d", i)
				if before[uri] == 1 {
					sentBefore++
				}
				asked, resent := comeBackAfterKill(t, b.At(g.base), cont[i], uri, up)
				if asked {
					askedAfter++
				}
				if before[uri] == 0 && !asked || resent {
					completedAfter++
				}
			}
			after := countByURI(up)
			for i := range stashes {
				if uri := fmt.Sprintf("/tab/%d", i); after[uri] != 1 {
					t.Errorf("%s reached the upstream %d times, want 1 (%d before the kill)", uri, after[uri], before[uri])
				}
			}
			t.Logf("%s store, kill during %d completions of %d stashes: %d had reached the app before the kill, %d were ambiguous after the restart (the person was asked), %d were sent after the restart; none lost, none twice",
				st.name, stashes*perStash, stashes, sentBefore, askedAfter, completedAfter)
		})
	}
}

// comeBackAfterKill plays the person coming back to one submission after
// the restart: the completion sent again, reloaded while the page says it
// is being sent. On the page that asks (it may have reached the app), the
// person clicks "Send it again" only if the app does not have it. It
// reports whether the person was asked and whether they sent it again; it
// fails the test if the submission ends anywhere else than on the app's
// answer or that question, or if anything reached the app twice meanwhile.
func comeBackAfterKill(t *testing.T, b *gatewaytest.Browser, cont []byte, uri string, up *gatewaytest.Upstream) (asked, resent bool) {
	t.Helper()
	resp := b.Do(http.MethodPost, "/.postern/resume", formType, cont)
	page := gatewaytest.ReadBody(t, resp)
	for range 60 { // bounded: each round is one reload, a lease lapses within 15 s
		if n := countByURI(up)[uri]; n > 1 {
			t.Fatalf("%s reached the upstream %d times", uri, n)
		}
		switch {
		case resp.StatusCode == http.StatusSeeOther:
			resp = b.Do(http.MethodGet, resp.Header.Get("Location"), "", nil)
			page = gatewaytest.ReadBody(t, resp)
		case resp.StatusCode == http.StatusAccepted && strings.Contains(page, "being sent"):
			time.Sleep(500 * time.Millisecond) // the page's own Refresh
			resp = b.Do(http.MethodGet, uri, "", nil)
			page = gatewaytest.ReadBody(t, resp)
		case strings.Contains(page, "Send it again") && !resent:
			asked = true
			if countByURI(up)[uri] == 1 {
				return asked, false // the app has it: the person does not send it again
			}
			form := gatewaytest.HiddenFields(page[strings.Index(page, `action="/.postern/resend"`):])
			resent = true
			resp = b.Do(http.MethodPost, "/.postern/resend", formType, []byte(form.Encode()))
			page = gatewaytest.ReadBody(t, resp)
		case resp.StatusCode == http.StatusOK && strings.Contains(page, "POST "+uri):
			return asked, resent
		default:
			t.Fatalf("%s after the restart: %d\n%.600s", uri, resp.StatusCode, page)
		}
	}
	t.Fatalf("%s: still not settled after the restart: %d\n%.600s", uri, resp.StatusCode, page)
	return asked, resent
}
