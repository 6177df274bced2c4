package e2e

import (
	"bytes"
	"crypto/rand"
	"errors"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

const nginxPath = "/usr/sbin/nginx"

// nginxConf is what the templates in testdata/e2e are filled with.
type nginxConf struct {
	Dir     string // the temporary folder for every file nginx writes
	Port    int    // where nginx listens on 127.0.0.1
	Gateway string // host:port of the gateway
	App     string // host:port of the app (forward auth only)
}

var errPortTaken = errors.New("nginx: port taken")

// startNginxStack starts a gateway in front of a and an nginx in front of
// the gateway, configured from testdata/e2e/name, and returns nginx's URL.
// The gateway's public URL is nginx's, as in a real deployment. A port that
// another process takes between choosing and binding it is retried.
func startNginxStack(t *testing.T, name string, a *app) string {
	t.Helper()
	public, _ := startNginxStackWith(t, name, a)
	return public
}

// startNginxStackWith is startNginxStack with the gateway's settings
// adjusted by opts; it also returns the gateway's own URL.
func startNginxStackWith(t *testing.T, name string, a *app, opts ...func(*gateway.Options)) (public, gw string) {
	t.Helper()
	requireBinary(t, nginxPath, "nginx")
	for range 3 {
		port := freePort(t)
		public := "http://127.0.0.1:" + strconv.Itoa(port)
		gw := startGateway(t, a.URL, public, opts...)
		err := startNginx(t, name, nginxConf{
			Dir:     t.TempDir(),
			Port:    port,
			Gateway: strings.TrimPrefix(gw, "http://"),
			App:     strings.TrimPrefix(a.URL, "http://"),
		})
		if errors.Is(err, errPortTaken) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return public, gw
	}
	t.Fatal("nginx: no free port after 3 tries")
	return "", ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNginx writes the configuration and runs nginx in the foreground
// until the test ends. It returns once nginx accepts connections.
func startNginx(t *testing.T, name string, conf nginxConf) error {
	t.Helper()
	tmpl, err := template.ParseFiles(
		filepath.Join("..", "..", "testdata", "e2e", "common.conf.tmpl"),
		filepath.Join("..", "..", "testdata", "e2e", name))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, conf); err != nil {
		return err
	}
	confPath := filepath.Join(conf.Dir, "nginx.conf")
	if err := os.WriteFile(confPath, buf.Bytes(), 0o600); err != nil {
		return err
	}
	errorLog := filepath.Join(conf.Dir, "error.log")
	var out bytes.Buffer
	// -e: nginx opens its error log before reading the configuration.
	cmd := exec.Command(nginxPath, "-p", conf.Dir, "-c", confPath, "-e", errorLog)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(errorLog)
			t.Logf("nginx configuration:\n%s\nnginx output:\n%s\nnginx error log:\n%s", buf.String(), out.String(), b)
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(conf.Port)
	deadline := time.Now().Add(15 * time.Second)
	for range 1500 {
		select {
		case err := <-exited:
			stopped = true
			b, _ := os.ReadFile(errorLog)
			if bytes.Contains(b, []byte("Address already in use")) || strings.Contains(out.String(), "Address already in use") {
				return errPortTaken
			}
			return errors.New("nginx exited at start (" + err.Error() + "): " + out.String() + string(b))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("nginx did not start listening on " + addr)
}

// client is a gatewaytest.Browser for nginx's address whose answers are
// read at once.
type client struct {
	*gatewaytest.Browser
	t *testing.T
}

func newClient(t *testing.T, base string) *client {
	return &client{Browser: gatewaytest.NewBrowser(t, base), t: t}
}

// expect sends a request, reads the answer and fails the test unless its
// status is want. hdr are extra header name/value pairs.
func (c *client) expect(want int, method, path, contentType string, body []byte, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	resp := c.Do(method, path, contentType, body, hdr...)
	page := gatewaytest.ReadBody(c.t, resp)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d; Location %q; body:\n%.600s", method, path, resp.StatusCode, want, resp.Header.Get("Location"), page)
	}
	return resp, page
}

// logIn sends the login form of page and returns the 303's Location.
func (c *client) logIn(page string) string {
	c.t.Helper()
	f := gatewaytest.HiddenFields(page)
	if f.Get("csrf") == "" {
		c.t.Fatalf("login page has no csrf field:\n%s", page)
	}
	f.Set("username", testUser)
	f.Set("password", testPassword)
	resp, _ := c.expect(http.StatusSeeOther, http.MethodPost, "/.postern/login", "application/x-www-form-urlencoded", []byte(f.Encode()))
	return resp.Header.Get("Location")
}

// TestNginxReverseProxyStashLoginReplay runs the whole promise through nginx
// as the TLS-less reverse proxy in front of postern: a large multipart
// submission without a session is stashed, the 307 reaches the client
// intact, and after the login the app receives the body byte for byte,
// exactly once, and its answer is shown at the original URL.
func TestNginxReverseProxyStashLoginReplay(t *testing.T) {
	a := newApp(t)
	base := startNginxStack(t, "proxy.conf.tmpl", a)
	c := newClient(t, base)

	// Larger than nginx's in-memory body buffer, so nginx spools it to its
	// temporary folder on both hops.
	data := make([]byte, 1536<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("title", "through nginx")
	fw, err := mw.CreateFormFile("file", "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	ct := mw.FormDataContentType()

	resp, _ := c.expect(http.StatusTemporaryRedirect, http.MethodPost, "/upload", ct, body.Bytes())
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.IsAbs() || loc.Path != "/.postern/login" || loc.Query().Get("rd") != "/upload" || len(loc.Query().Get("stash")) < 22 {
		t.Fatalf("307 Location through nginx = %q, want the gateway's relative login URL with stash and rd=/upload", resp.Header.Get("Location"))
	}
	if n := len(a.Submissions()); n != 0 {
		t.Fatalf("app received %d submissions before the login", n)
	}
	// The client follows the 307 as a browser does: same method, same
	// body; the login sends it on (303) to itself as a GET.
	resp, _ = c.expect(http.StatusSeeOther, http.MethodPost, loc.RequestURI(), ct, body.Bytes())
	if got := resp.Header.Get("Location"); got != loc.RequestURI() {
		t.Fatalf("the 307 followed through nginx: 303 to %q, want the login page %q", got, loc.RequestURI())
	}
	_, page := c.expect(http.StatusOK, http.MethodGet, loc.RequestURI(), "", nil)
	if !strings.Contains(page, "Your submission is kept") {
		t.Fatalf("login page through nginx lacks the kept note:\n%s", page)
	}
	if got := c.logIn(page); got != "/upload" {
		t.Fatalf("login's 303 goes to %q, want /upload", got)
	}
	_, result := c.expect(http.StatusOK, http.MethodGet, "/upload", "", nil)
	if !strings.Contains(result, `<span id="got-sha">`+shaHex(data)+`</span>`) || !strings.Contains(result, `<span id="count">1</span>`) {
		t.Errorf("result page through nginx does not show the file and one submission:\n%.800s", result)
	}

	sub := onlySubmission(t, a)
	expectReplayedBy(t, sub)
	if !bytes.Equal(sub.Body, body.Bytes()) {
		t.Errorf("app received %d bytes (sha256 %s), want the %d bytes sent (sha256 %s)", len(sub.Body), shaHex(sub.Body), body.Len(), shaHex(body.Bytes()))
	}
	if got := sub.Header.Get("Content-Type"); got != ct {
		t.Errorf("app received Content-Type %q, want %q", got, ct)
	}
	if sub.URI != "/upload" {
		t.Errorf("submission went to %s", sub.URI)
	}

	// The result was shown once; asking again is a plain GET.
	_, again := c.expect(http.StatusOK, http.MethodGet, "/upload", "", nil)
	if !strings.Contains(again, `<h1 id="page">GET /upload</h1>`) {
		t.Errorf("second GET of /upload is not the app's GET page:\n%.400s", again)
	}
	onlySubmission(t, a)
}

// TestNginxAuthRequest puts nginx with auth_request against /.postern/auth
// in front of an app: no session leads to the login, a session passes the
// gateway's identity, and identity headers a client forges never reach the
// app.
func TestNginxAuthRequest(t *testing.T) {
	a := newApp(t)
	base, _ := startNginxStackWith(t, "authrequest.conf.tmpl", a, trustLoopbackNginx)
	c := newClient(t, base)
	forged := []string{"X-Forwarded-User", "mallory", "X-Forwarded-Email", "mallory@example.com",
		"X-Forwarded-Groups", "admins", "X-Postern-Replayed", "true"}

	// The check is for nginx only.
	c.expect(http.StatusNotFound, http.MethodGet, "/.postern/auth", "", nil)

	resp, _ := c.expect(http.StatusFound, http.MethodGet, "/app/hello?x=1", "", nil, forged...)
	if got, want := resp.Header.Get("Location"), base+"/.postern/login?rd=/app/hello?x=1"; got != want && got != "/.postern/login?rd=/app/hello?x=1" {
		t.Fatalf("without a session nginx sends the client to %q, want the login with rd", got)
	}
	if n := len(a.Requests()); n != 0 {
		t.Fatalf("app received %d requests without a session", n)
	}

	_, page := c.expect(http.StatusOK, http.MethodGet, "/.postern/login?rd=/app/hello?x=1", "", nil)
	if got := c.logIn(page); got != "/app/hello?x=1" {
		t.Fatalf("login's 303 goes to %q, want back to /app/hello?x=1", got)
	}

	_, hello := c.expect(http.StatusOK, http.MethodGet, "/app/hello?x=1", "", nil, forged...)
	if !strings.Contains(hello, `<span id="user">alice</span>`) {
		t.Errorf("app page does not show user alice:\n%.400s", hello)
	}
	reqs := a.Requests()
	if len(reqs) != 1 {
		t.Fatalf("app received %d requests, want 1", len(reqs))
	}
	h := reqs[0].Header
	if got := h.Values("X-Forwarded-User"); len(got) != 1 || got[0] != testUser {
		t.Errorf("app received X-Forwarded-User %q, want only [%s]", got, testUser)
	}
	for _, k := range []string{"X-Forwarded-Email", "X-Forwarded-Groups", "X-Postern-Replayed"} {
		if got := h.Values(k); len(got) != 0 {
			t.Errorf("app received a forged %s: %q", k, got)
		}
	}

	// After logging out, nginx sends the client to the login again.
	_, out := c.expect(http.StatusOK, http.MethodGet, "/.postern/logout", "", nil)
	f := gatewaytest.HiddenFields(out)
	c.expect(http.StatusSeeOther, http.MethodPost, "/.postern/logout", "application/x-www-form-urlencoded", []byte(f.Encode()))
	c.expect(http.StatusFound, http.MethodGet, "/app/hello?x=1", "", nil)
	if n := len(a.Requests()); n != 1 {
		t.Errorf("app received %d requests, want still 1 after the logout", n)
	}
}
