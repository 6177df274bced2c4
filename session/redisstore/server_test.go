package redisstore_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
)

// redisServer is a redis-server process the test started on loopback, in a
// temporary directory, stopped in t.Cleanup.
type redisServer struct {
	bin    string
	port   int
	dir    string
	head   []string // arguments before the standard ones (a config file)
	extra  []string
	proc   *os.Process
	exited chan error // receives the process's exit, once
}

// redisServerPath returns the redis-server binary, or skips the test when
// there is none (fails instead when CI=true: CI must run these tests).
func redisServerPath(t testing.TB) string {
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

// startRedis starts a redis-server on a free loopback port with its own
// temporary directory, extra arguments appended (later ones win), and waits
// until it answers PING.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	s := &redisServer{bin: redisServerPath(t), dir: t.TempDir(), extra: extra}
	return s.start(t)
}

// startSentinel starts a Redis Sentinel that monitors the master at
// masterAddr under the name master, with a quorum of one.
func startSentinel(t testing.TB, master, masterAddr string) *redisServer {
	t.Helper()
	s := &redisServer{bin: redisServerPath(t), dir: t.TempDir()}
	host, port, _ := net.SplitHostPort(masterAddr)
	conf := s.dir + "/sentinel.conf"
	if err := os.WriteFile(conf, []byte("sentinel monitor "+master+" "+host+" "+port+" 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.head = []string{conf, "--sentinel"}
	return s.start(t)
}

// start launches s on a free port and registers its stop.
func (s *redisServer) start(t testing.TB) *redisServer {
	t.Helper()
	t.Cleanup(s.stop)
	var err error
	// A free port can be taken between our probe and redis binding it.
	for attempt := 0; attempt < 5; attempt++ {
		s.port = freePort(t)
		if err = s.launch(); err == nil {
			return s
		}
	}
	t.Fatalf("start redis-server: %v", err)
	return nil
}

// restart starts the server again on the same port and directory.
func (s *redisServer) restart(t testing.TB) {
	t.Helper()
	if err := s.launch(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
}

func (s *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *redisServer) url() string { return "redis://" + s.addr() + "/0" }

// launch runs redis-server on s.port and waits, at most 10s, for PING.
func (s *redisServer) launch() error {
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
		if pingRaw(s.addr()) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
}

// stop ends the server gracefully (SIGTERM, so an append-only file is
// flushed), killing it if it does not exit within 10s.
func (s *redisServer) stop() {
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

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
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

// testTarget is a Redis to run a test against: its URL and a key prefix no
// other test uses, so tests can share a server (POSTERN_TEST_REDIS_URL) and
// still SCAN for exactly their own keys.
type testTarget struct {
	url    string
	prefix string
}

// redisForTest returns the Redis named by POSTERN_TEST_REDIS_URL if set,
// else a redis-server started for this test.
func redisForTest(t testing.TB) testTarget {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "postern-test-" + hex.EncodeToString(b[:])
	if u := os.Getenv("POSTERN_TEST_REDIS_URL"); u != "" {
		tt := testTarget{url: u, prefix: prefix}
		// A shared server outlives the test: remove what it left.
		raw := rawClient(t, tt)
		t.Cleanup(func() {
			ctx := context.Background()
			keys, err := scanKeys(ctx, raw, prefix)
			if err == nil && len(keys) > 0 {
				err = raw.Del(ctx, keys...).Err()
			}
			if err != nil {
				t.Errorf("clean up test keys: %v", err)
			}
		})
		return tt
	}
	return testTarget{url: startRedis(t).url(), prefix: prefix}
}

// openStore opens a Store on tt, closed in t.Cleanup.
func openStore(t testing.TB, tt testTarget, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.Open(ctx, tt.url, append([]redisstore.Option{redisstore.WithKeyPrefix(tt.prefix)}, opts...)...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newBackend is the constructor a conformance suite takes:
// sessiontest.Run(t, newBackend) once package sessiontest exists.
func newBackend(t *testing.T) session.Backend {
	return openStore(t, redisForTest(t))
}

// rawClient is a plain go-redis client on tt, for looking under the Store.
func rawClient(t testing.TB, tt testTarget) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(tt.url)
	if err != nil {
		t.Fatalf("raw client: %v", err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// keysWithPrefix lists, with SCAN, every key of this test's prefix.
func keysWithPrefix(t testing.TB, c redis.UniversalClient, prefix string) []string {
	t.Helper()
	keys, err := scanKeys(context.Background(), c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func scanKeys(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	var keys []string
	var cursor uint64
	for i := 0; i < 10000; i++ {
		batch, next, err := c.Scan(ctx, cursor, prefix+":*", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		keys = append(keys, batch...)
		if cursor = next; cursor == 0 {
			return keys, nil
		}
	}
	return nil, errors.New("scan did not finish")
}
