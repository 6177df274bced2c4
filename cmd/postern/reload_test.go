package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

// TestHtpasswdReload runs the real binary and changes its htpasswd file
// three ways: replaced by a rename (as editors save), written in place, and
// written with SIGHUP sent at once. Each time the gateway keeps running, a
// removed user is logged out at their next request and cannot log in, an
// added user logs in at once, and a file that does not parse keeps the users
// the gateway had.
func TestHtpasswdReload(t *testing.T) {
	for _, how := range []string{"rename", "in place", "SIGHUP"} {
		t.Run(how, func(t *testing.T) {
			up := newRecorder(t)
			s := newSetup(t, up.URL, "file:"+filepath.Join(t.TempDir(), "store"))
			g := s.start(t)
			// lines counts the log lines holding every one of want.
			lines := func(want ...string) int {
				n := 0
				for _, l := range strings.Split(g.out.String(), "\n") {
					all := true
					for _, w := range want {
						all = all && strings.Contains(l, w)
					}
					if all {
						n++
					}
				}
				return n
			}
			change := func(content []byte, msg string) {
				t.Helper()
				want := []string{msg}
				if how == "SIGHUP" {
					want = append(want, "trigger=SIGHUP")
				}
				before := lines(want...)
				switch how {
				case "rename":
					gatewaytest.ReplaceFile(t, s.htpasswd, content)
				case "in place":
					if err := os.WriteFile(s.htpasswd, content, 0o600); err != nil {
						t.Fatal(err)
					}
				case "SIGHUP":
					if err := os.WriteFile(s.htpasswd, content, 0o600); err != nil {
						t.Fatal(err)
					}
					if err := g.proc.Signal(syscall.SIGHUP); err != nil {
						t.Fatal(err)
					}
				}
				if !waitFor(20*time.Second, func() bool { return lines(want...) > before }) {
					t.Fatalf("no %q in the log:\n%s", want, g.out.String())
				}
			}

			alice := newBrowser(t).At(g.base)
			loginOnly(t, alice)
			gatewaytest.ExpectStatus(t, alice.Do(http.MethodGet, "/before", "", nil), http.StatusOK)

			// alice goes, bob comes.
			bob := gatewaytest.HtpasswdLine(t, "bob", "bob's password")
			change(bob, "msg=\"reloaded htpasswd_file\"")
			resp := alice.Do(http.MethodGet, "/after", "", nil)
			gatewaytest.ReadBody(t, resp)
			if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "/.postern/login") {
				t.Fatalf("removed user's next request: %d %q, want 307 to the login", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := countByURI(up)["/after"]; got != 0 {
				t.Fatalf("the removed user's request reached the app %d times", got)
			}
			page := gatewaytest.ExpectStatus(t, alice.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
			gatewaytest.ExpectStatus(t, alice.Login(gatewaytest.HiddenFields(page), procUser, procPassword), http.StatusUnauthorized)
			if !strings.Contains(g.out.String(), "session ended: user no longer in the htpasswd file") {
				t.Errorf("no log line for the ended session:\n%s", g.out.String())
			}

			b := newBrowser(t).At(g.base)
			page = gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
			resp = b.Login(gatewaytest.HiddenFields(page), "bob", "bob's password")
			gatewaytest.ReadBody(t, resp)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("added user's login: %d, want 303", resp.StatusCode)
			}
			gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/bob", "", nil), http.StatusOK)

			// A file that does not parse: bob stays, and the log says why.
			change([]byte("bob:plain-text-password\n"), "msg=\"reload failed, keeping the previous htpasswd_file\"")
			if !strings.Contains(g.out.String(), "plain-text password") {
				t.Errorf("the log does not say why the file was refused:\n%s", g.out.String())
			}
			if strings.Contains(g.out.String(), "plain-text-password") {
				t.Errorf("the log shows the file's contents:\n%s", g.out.String())
			}
			gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/bob-again", "", nil), http.StatusOK)
			other := newBrowser(t).At(g.base)
			page = gatewaytest.ExpectStatus(t, other.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
			resp = other.Login(gatewaytest.HiddenFields(page), "bob", "bob's password")
			gatewaytest.ReadBody(t, resp)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("bob after a bad file: %d, want 303 (previous users kept)", resp.StatusCode)
			}

			select {
			case <-g.exited:
				t.Fatalf("postern exited (%v):\n%s", g.err, g.out.String())
			default:
			}
		})
	}
}
