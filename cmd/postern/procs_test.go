package main

// Helpers for the tests that run the real postern binary as child processes
// (replicas_test.go, restart_test.go, outage_test.go, memory_test.go): the
// binary built once per test run, gateway and redis-server processes, an
// upstream that records what reaches it, and a browser with a cookie jar
// that does not follow redirects.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The public URL every gateway of these tests is configured with: as behind
// a load balancer, all replicas are one origin, and browsers send it as
// Origin with their submissions.
const testPublicURL = "http://postern.test"

const (
	procUser     = "alice"
	procPassword = "correct horse battery staple"
)

// binary is the postern binary built once for this test run.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// posternBinary builds ./cmd/postern once per test run, with the race
// detector when the tests themselves run with it, and returns its path.
func posternBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "postern-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "postern")
		args := []string{"build", "-o", binary.path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// gatewaySetup is what a group of gateway processes share: the same
// secret, users, store, upstream and public URL, as replicas would.
type gatewaySetup struct {
	upstream  string
	store     string
	secret    string // base64
	htpasswd  string // path
	extraArgs []string
}

// newSetup writes a bcrypt htpasswd file for procUser and makes a cookie
// secret; the caller fills in upstream and store.
func newSetup(t testing.TB, upstream, store string) *gatewaySetup {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(procPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users.htpasswd")
	if err := os.WriteFile(users, []byte(procUser+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &gatewaySetup{upstream: upstream, store: store, secret: base64.StdEncoding.EncodeToString(key), htpasswd: users}
}

// gatewayProc is one running postern process.
type gatewayProc struct {
	base   string // http://127.0.0.1:PORT
	admin  string // http://127.0.0.1:PORT of the admin listener
	proc   *os.Process
	out    *syncBuffer // stdout and stderr: the log
	exited chan struct{}
	err    error // the exit, once exited is closed
}

var startedRE = regexp.MustCompile(`msg="postern started" listen=(\S+) .*admin_listen=(\S+)`)

// start runs a gateway process of the setup on free loopback ports and
// waits for its start-up log line; it is stopped in t.Cleanup.
func (s *gatewaySetup) start(t testing.TB) *gatewayProc {
	t.Helper()
	args := append([]string{
		"--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0",
		"--upstream", s.upstream,
		"--store", s.store,
		"--cookie-secret", s.secret,
		"--htpasswd-file", s.htpasswd,
		"--public-url", testPublicURL,
		"--log-level", "info",
	}, s.extraArgs...)
	cmd := exec.Command(posternBinary(t), args...)
	// Settings come from the flags only, never from the test's environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSTERN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := &gatewayProc{out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postern: %v", err)
	}
	p.proc = cmd.Process
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := startedRE.FindStringSubmatch(p.out.String()); m != nil {
			p.base, p.admin = "http://"+m[1], "http://"+m[2]
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("postern exited before starting (%v):\n%s", p.err, p.out.String())
		case <-deadline.C:
			t.Fatalf("postern did not log its start within 30s:\n%s", p.out.String())
		case <-tick.C:
		}
	}
}

// kill ends the process with SIGKILL, as a crash or an OOM killer would,
// and waits for it.
func (p *gatewayProc) kill(t testing.TB) {
	t.Helper()
	_ = p.proc.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("postern did not exit after SIGKILL")
	}
}

// stop ends the process gracefully (SIGTERM), killing it after 10s.
func (p *gatewayProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.proc.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.proc.Kill()
		<-p.exited
	}
}

// metric scrapes the admin listener and returns the value of the first
// sample whose line starts with name (a metric name, optionally with
// labels, e.g. `postern_replays_total{result="replayed"}`); 0 when absent.
func (p *gatewayProc) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, sc.Err()
}

// seen is one request as the upstream saw it. The body is hashed while it
// is read, never kept whole.
type seen struct {
	Method, URI    string
	User, Replayed string
	Size           int64
	SHA            string
	Head           string // the first bytes of the body
	Err            error  // reading the body failed
}

// recorder is the protected app: a real HTTP server that records every
// request and answers with what it received.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	// onWrite, if set, is called with each non-GET request once it has been
	// read and recorded, before the answer (to hold replays in flight).
	onWrite func(s seen)
}

func newRecorder(t testing.TB) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		var head bytes.Buffer
		n, err := io.Copy(io.MultiWriter(h, &headWriter{b: &head, max: 256}), r.Body)
		s := seen{Method: r.Method, URI: r.URL.RequestURI(), User: r.Header.Get("X-Forwarded-User"),
			Replayed: r.Header.Get("X-Postern-Replayed"), Size: n, SHA: hex.EncodeToString(h.Sum(nil)), Head: head.String(), Err: err}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, s)
		count := len(rec.reqs)
		hook := rec.onWrite
		rec.mu.Unlock()
		if hook != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			hook(s)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<p>app answer #%d: %s %s user=%s replayed=%s size=%d</p>", count, s.Method, s.URI, s.User, s.Replayed, s.Size)
	}))
	t.Cleanup(rec.Close)
	return rec
}

// submissions returns the requests that would change something upstream.
func (rec *recorder) submissions() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []seen
	for _, s := range rec.reqs {
		if s.Method != http.MethodGet && s.Method != http.MethodHead {
			out = append(out, s)
		}
	}
	return out
}

// countByURI counts the submissions per request URI.
func (rec *recorder) countByURI() map[string]int {
	m := map[string]int{}
	for _, s := range rec.submissions() {
		m[s.URI]++
	}
	return m
}

type headWriter struct {
	b   *bytes.Buffer
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - w.b.Len(); room > 0 {
		w.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// browser is a client with a cookie jar that does not follow redirects, so
// each hop is asserted. Go's cookie jar scopes cookies by host, not port, so
// one browser carries its cookies to every gateway on 127.0.0.1, as a
// browser behind a load balancer would.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       60 * time.Second,
	}}
}

// send sends a request as a page load of the gateway's origin would; it
// does not fail the test, so goroutines may use it.
func (b *browser) send(ctx context.Context, method, target, ctype string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if body != nil && size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Origin", testPublicURL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return b.c.Do(req)
}

// do is send with a small body that fails the test on a transport error.
func (b *browser) do(method, target, ctype string, body []byte) *http.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	resp, err := b.send(ctx, method, target, ctype, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		cancel()
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	// The body is read within the timeout by the caller.
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// expect reads the answer and fails the test unless it has status want.
func expect(t testing.TB, resp *http.Response, want int) string {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.600s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
	return body
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)"`)

// hiddenFields returns the hidden fields of one of the gateway's pages.
func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

const formType = "application/x-www-form-urlencoded"

// submitLoggedOut sends a submission to the gateway at base with no
// session, checks the 307 into the login, follows it as a browser does
// (same method and body) and returns the login page's hidden fields.
func (b *browser) submitLoggedOut(base, method, path, ctype string, body []byte) url.Values {
	b.t.Helper()
	resp := b.do(method, base+path, ctype, body)
	readAll(b.t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		b.t.Fatalf("%s %s without a session: status %d, want 307", method, path, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/.postern/login?") || !strings.Contains(loc, "stash=") {
		b.t.Fatalf("307 Location %q is not the gateway's login with a stash", loc)
	}
	f := hiddenFields(expect(b.t, b.do(method, base+loc, ctype, body), http.StatusOK))
	if f.Get("stash") == "" || f.Get("csrf") == "" {
		b.t.Fatalf("login page after %s %s lacks stash or csrf", method, path)
	}
	return f
}

// loginForm is the login form with the page's hidden fields filled in.
func loginForm(fields url.Values) []byte {
	f := url.Values{}
	for k, v := range fields {
		f[k] = v
	}
	f.Set("username", procUser)
	f.Set("password", procPassword)
	return []byte(f.Encode())
}

// login posts the login form to the gateway at base.
func (b *browser) login(base string, fields url.Values) *http.Response {
	b.t.Helper()
	return b.do(http.MethodPost, base+"/.postern/login", formType, loginForm(fields))
}

// loginOnly logs the browser in at base without completing any stash, as
// a login in another tab does.
func (b *browser) loginOnly(base string) {
	b.t.Helper()
	f := hiddenFields(expect(b.t, b.do(http.MethodGet, base+"/.postern/login", "", nil), http.StatusOK))
	f.Del("stash")
	resp := b.login(base, f)
	readAll(b.t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
}

// continueFields returns the hidden fields of the "continue" page a
// logged-in browser gets for a pending stash: what POST /.postern/resume
// takes.
func (b *browser) continueFields(base string, f url.Values) []byte {
	b.t.Helper()
	q := url.Values{"stash": {f.Get("stash")}, "rd": {f.Get("rd")}}
	page := expect(b.t, b.do(http.MethodGet, base+"/.postern/login?"+q.Encode(), "", nil), http.StatusOK)
	c := hiddenFields(page)
	if c.Get("stash") != f.Get("stash") {
		b.t.Fatalf("continue page is not for stash %s:\n%.600s", f.Get("stash"), page)
	}
	return []byte(c.Encode())
}

// waitFor polls cond every 20ms until it is true or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
