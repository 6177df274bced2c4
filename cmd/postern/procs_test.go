package main

// Helpers for the tests that run the real postern binary as child processes
// (replicas_test.go, restart_test.go, outage_test.go, memory_test.go): the
// binary built once per test run, gateway and redis-server processes, an
// upstream that records what reaches it, and a browser (gatewaytest) that
// sends the public URL as its Origin.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

// The public URL every gateway of these tests is configured with: as behind
// a load balancer, all replicas are one origin, and browsers send it as
// Origin with their submissions.
const testPublicURL = "http://postern.test"

const (
	procUser     = "alice"
	procPassword = "correct horse battery staple"
)

// builtBinary is a postern binary built once for this test run.
type builtBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// binary is built like the tests (with -race when they are); plainBinary
// never has the race detector, for measuring the process's memory.
var binary, plainBinary builtBinary

func TestMain(m *testing.M) {
	code := m.Run()
	for _, b := range []*builtBinary{&binary, &plainBinary} {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
	os.Exit(code)
}

// posternBinary builds ./cmd/postern once per test run, with the race
// detector when the tests themselves run with it, and returns its path.
func posternBinary(t testing.TB) string {
	t.Helper()
	return buildPostern(t, &binary, raceEnabled())
}

// plainPosternBinary builds ./cmd/postern once without the race detector.
func plainPosternBinary(t testing.TB) string {
	t.Helper()
	return buildPostern(t, &plainBinary, false)
}

func buildPostern(t testing.TB, binary *builtBinary, race bool) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "postern-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "postern")
		args := []string{"build", "-o", binary.path}
		if race {
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
	noRace    bool // run the binary built without the race detector
}

// newSetup writes a bcrypt htpasswd file for procUser and makes a cookie
// secret; the caller fills in upstream and store.
func newSetup(t testing.TB, upstream, store string) *gatewaySetup {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.htpasswd")
	if err := os.WriteFile(users, gatewaytest.HtpasswdLine(t, procUser, procPassword), 0o600); err != nil {
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
	// Tests share one Redis and one client address (127.0.0.1), and the
	// per-address counts outlive a test: off, unless a test sets them.
	for _, flag := range []string{"--stash-max-per-address", "--stash-max-bytes-per-address"} {
		if !slices.Contains(s.extraArgs, flag) {
			args = append(args, flag, "0")
		}
	}
	bin := posternBinary(t)
	if s.noRace {
		bin = plainPosternBinary(t)
	}
	cmd := exec.Command(bin, args...)
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

// newRecorder starts the protected app: a recording upstream that keeps
// only the first 256 bytes of each body and hashes the rest, as these tests
// send up to 64 MiB.
func newRecorder(t testing.TB) *gatewaytest.Upstream {
	return gatewaytest.NewHashingUpstream(t, 256)
}

// countByURI counts the submissions per request URI.
func countByURI(up *gatewaytest.Upstream) map[string]int {
	m := map[string]int{}
	for _, s := range up.Submissions() {
		m[s.URI]++
	}
	return m
}

// newBrowser returns a browser that sends testPublicURL as its Origin, as
// every gateway of these tests is that one origin; aim it at a gateway with
// At.
func newBrowser(t testing.TB) *gatewaytest.Browser {
	b := gatewaytest.NewBrowser(t, "")
	b.Origin = testPublicURL
	return b
}

const formType = "application/x-www-form-urlencoded"

// loginOnly logs b in at its gateway without completing any stash, as a
// login in another tab does.
func loginOnly(t testing.TB, b *gatewaytest.Browser) {
	t.Helper()
	f := gatewaytest.HiddenFields(gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK))
	f.Del("stash")
	resp := b.Login(f, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
}

// continueFields returns the hidden fields of the "continue" page a
// logged-in browser gets at its gateway for a pending stash: what POST
// /.postern/resume takes.
func continueFields(t testing.TB, b *gatewaytest.Browser, f url.Values) []byte {
	t.Helper()
	q := url.Values{"stash": {f.Get("stash")}, "rd": {f.Get("rd")}}
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login?"+q.Encode(), "", nil), http.StatusOK)
	c := gatewaytest.HiddenFields(page)
	if c.Get("stash") != f.Get("stash") {
		t.Fatalf("continue page is not for stash %s:\n%.600s", f.Get("stash"), page)
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
