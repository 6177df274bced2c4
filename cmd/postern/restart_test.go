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
// reached it, then restarts it on the same store and completes every
// submission once more. No submission reaches the upstream twice. A stash
// taken at the moment of the kill is never sent again: it counts as lost
// unless its replay had reached the upstream. Every stash not yet taken
// completes after the restart.
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
			statuses := make([]int, stashes)
			for i := range stashes {
				resp := b.Do(http.MethodPost, g.base+"/.postern/resume", formType, cont[i])
				gatewaytest.ReadBody(t, resp)
				statuses[i] = resp.StatusCode
			}
			after := countByURI(up)

			var sentBefore, completedAfter, lost int
			for i := range stashes {
				uri := fmt.Sprintf("/tab/%d", i)
				switch {
				case after[uri] > 1:
					t.Errorf("%s reached the upstream %d times", uri, after[uri])
				case before[uri] == 1:
					sentBefore++
				case after[uri] == 1:
					completedAfter++
				default:
					lost++
				}
				// Replayed after the restart, or taken before the kill:
				// both answer 303; an expired page (410) would mean a
				// stash vanished without being taken.
				if statuses[i] != http.StatusSeeOther {
					t.Errorf("completion of %s after the restart answered %d, want 303", uri, statuses[i])
				}
			}
			// The restarted gateway's own account: every stash it did not
			// replay was already taken before the kill.
			mctx, mcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer mcancel()
			replayed, err1 := g.metric(mctx, `postern_replays_total{result="replayed"}`)
			taken, err2 := g.metric(mctx, `postern_replays_total{result="already_taken"}`)
			if err1 != nil || err2 != nil {
				t.Fatalf("metrics: %v %v", err1, err2)
			}
			if int(replayed) != completedAfter || int(taken) != sentBefore+lost {
				t.Errorf("after the restart the gateway replayed %v and found %v taken; the upstream says %d completed after the restart, %d sent before the kill, %d lost",
					replayed, taken, completedAfter, sentBefore, lost)
			}
			t.Logf("%s store, kill during %d completions of %d stashes: %d replayed before the kill (answer lost with the process), %d taken but never sent (lost), %d completed after the restart; none twice",
				st.name, stashes*perStash, stashes, sentBefore, lost, completedAfter)
		})
	}
}
