package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server process a test started on loopback, in a
// temporary directory, stopped in t.Cleanup.
type Server struct {
	bin    string
	port   int
	dir    string
	head   []string // arguments before the standard ones (a config file)
	extra  []string
	proc   *os.Process
	exited chan error // receives the process's exit, once
}

// ServerPath returns the redis-server binary, or skips the test when
// there is none (fails instead when CI=true: CI must run these tests).
func ServerPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not on PATH; CI must run the Redis tests (Debian: apt-get install redis-server)")
		}
		t.Skip("redis-server is not on PATH: skipping Redis tests (Debian: apt-get install redis-server)")
	}
	return p
}

// Start starts a redis-server on a free loopback port with its own
// temporary directory, extra arguments appended (later ones win), and waits
// until it answers PING.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := &Server{bin: ServerPath(t), dir: t.TempDir(), extra: extra}
	return s.start(t)
}

// StartSentinel starts a Redis Sentinel that monitors the master at
// masterAddr under the name master, with a quorum of one.
//
// Each of conf is one more line of the sentinel's configuration, such as
// "sentinel down-after-milliseconds NAME 1000" for a quick failover.
func StartSentinel(t testing.TB, master, masterAddr string, conf ...string) *Server {
	t.Helper()
	s := &Server{bin: ServerPath(t), dir: t.TempDir()}
	host, port, _ := net.SplitHostPort(masterAddr)
	path := s.dir + "/sentinel.conf"
	lines := "sentinel monitor " + master + " " + host + " " + port + " 1\n"
	for _, l := range conf {
		lines += l + "\n"
	}
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	s.head = []string{path, "--sentinel"}
	return s.start(t)
}

// start launches s on a free port and registers its stop.
func (s *Server) start(t testing.TB) *Server {
	t.Helper()
	t.Cleanup(s.Stop)
	var err error
	// A free port can be taken between our probe and redis binding it.
	for attempt := 0; attempt < 5; attempt++ {
		s.port = FreePort(t)
		if err = s.launch(); err == nil {
			return s
		}
	}
	t.Fatalf("start redis-server: %v", err)
	return nil
}

// Restart starts the server again on the same port and directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.launch(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
}

func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// launch runs redis-server on s.port and waits, at most 10s, for PING.
func (s *Server) launch() error {
	logf, err := os.OpenFile(s.dir+"/redis.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	args := append(slices.Clone(s.head),
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no")
	args = append(args, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.proc, s.exited = cmd.Process, exited
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			s.proc = nil
			out, _ := os.ReadFile(s.dir + "/redis.log")
			return fmt.Errorf("redis-server exited (%v): %s", err, lastLines(string(out), 5))
		default:
		}
		if pingRaw(s.Addr()) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
}

// Stop ends the server gracefully (SIGTERM, so an append-only file is
// flushed), killing it if it does not exit within 10s.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.proc.Kill()
		<-s.exited
	}
	s.proc = nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pingRaw speaks the inline protocol, so readiness does not depend on the
// client under test.
func pingRaw(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// URL returns the Redis named by POSTERN_TEST_REDIS_URL if set, else the URL
// of a redis-server started for this test.
func URLForTest(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("POSTERN_TEST_REDIS_URL"); u != "" {
		return u
	}
	return Start(t).URL()
}

// Kill ends the server at once with SIGKILL, as a crash would: what an
// append-only file holds survives, nothing else is flushed.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.proc == nil {
		return
	}
	_ = s.proc.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("redis-server did not exit after SIGKILL")
	}
	s.proc = nil
}
