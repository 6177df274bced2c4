package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/gateway/gatewaytest"
)

// socketApp is an app on a unix socket that answers with what reached it.
func socketApp(t *testing.T, path string) *http.Server {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s host=%s user=%s replayed=%s body=%s", r.Method, r.URL.Path, r.Host,
			r.Header.Get("X-Forwarded-User"), r.Header.Get("X-Postern-Replayed"), body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestUnixSocketUpstream runs the real binary in front of an app on a unix
// socket: live requests and a replayed submission reach it, with the Host
// the browser used; check-config refuses a socket that does not exist, and
// at run time such a socket gives a 502 page.
func TestUnixSocketUpstream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	app := socketApp(t, sock)
	s := newSetup(t, "unix://"+sock, "file:"+filepath.Join(t.TempDir(), "store"))
	g := s.start(t)
	b := newBrowser(t).At(g.base)
	host := strings.TrimPrefix(g.base, "http://")

	f := b.SubmitWhileLoggedOut(http.MethodPost, "/orders", formType, []byte("item=1"))
	resp := b.Login(f, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d, want 303", resp.StatusCode)
	}
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, resp.Header.Get("Location"), "", nil), http.StatusOK)
	if want := "POST /orders host=" + host + " user=alice replayed=true body=item=1"; page != want {
		t.Errorf("replayed submission: %q, want %q", page, want)
	}
	page = gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/page", "", nil), http.StatusOK)
	if want := "GET /page host=" + host + " user=alice"; !strings.HasPrefix(page, want) {
		t.Errorf("live request: %q, want %q", page, want)
	}

	// The app stops and its socket goes: a 502 page.
	app.Close()
	if _, err := os.Stat(sock); err == nil {
		if err := os.Remove(sock); err != nil {
			t.Fatal(err)
		}
	}
	page = gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/page", "", nil), http.StatusBadGateway)
	if !strings.Contains(page, "The application is not answering") {
		t.Errorf("502 page:\n%s", page)
	}

	var out bytes.Buffer
	cmd := exec.Command(posternBinary(t), "check-config", "--upstream", "unix://"+sock, "--cookie-secret", s.secret, "--htpasswd-file", s.htpasswd)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitConfig {
		t.Errorf("check-config with a missing socket: %v, want exit %d:\n%s", err, exitConfig, out.String())
	}
	if want := "upstream: the socket " + sock + " does not exist"; !strings.Contains(out.String(), want) {
		t.Errorf("check-config output lacks %q:\n%s", want, out.String())
	}
}

// TestUpstreamCAFile: an https upstream with a certificate of a private CA
// is reached with --upstream-ca-file, and refused (502) without it.
func TestUpstreamCAFile(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "secure app: %s user=%s", r.URL.Path, r.Header.Get("X-Forwarded-User"))
	}))
	app.TLS = ca.ServerTLS(t)
	app.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	app.StartTLS()
	t.Cleanup(app.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, withCA := range []bool{true, false} {
		t.Run(fmt.Sprintf("ca=%v", withCA), func(t *testing.T) {
			s := newSetup(t, app.URL, "file:"+filepath.Join(t.TempDir(), "store"))
			if withCA {
				s.extraArgs = []string{"--upstream-ca-file", caFile}
			}
			g := s.start(t)
			b := newBrowser(t).At(g.base)
			loginOnly(t, b)
			resp := b.Do(http.MethodGet, "/page", "", nil)
			page := gatewaytest.ReadBody(t, resp)
			switch {
			case withCA && (resp.StatusCode != http.StatusOK || page != "secure app: /page user=alice"):
				t.Errorf("with the CA file: %d %q", resp.StatusCode, page)
			case !withCA && resp.StatusCode != http.StatusBadGateway:
				t.Errorf("without the CA file: %d, want 502 (certificate not trusted)", resp.StatusCode)
			}
		})
	}
}
