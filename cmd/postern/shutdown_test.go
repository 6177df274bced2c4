package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

// TestGracefulShutdown runs the real binary with --shutdown-delay: after
// SIGTERM, /.postern/readyz answers 503 while other requests are still
// served; then the listener closes, and a slow request that was in flight
// completes before the process exits cleanly.
func TestGracefulShutdown(t *testing.T) {
	up := newRecorder(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	up.SetAnswer(func(w http.ResponseWriter, r *http.Request, got gatewaytest.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
			_, _ = io.WriteString(w, "slow answer")
			return
		}
		gatewaytest.Echo(w, r, got)
	})
	s := newSetup(t, up.URL, "file:"+filepath.Join(t.TempDir(), "store"))
	s.extraArgs = []string{"--shutdown-delay", "4s", "--shutdown-timeout", "60s"}
	g := s.start(t)
	b := newBrowser(t).At(g.base)
	loginOnly(t, b)
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/readyz", "", nil), http.StatusOK)

	slow := make(chan string, 1)
	go func() {
		resp, err := b.Send(context.Background(), http.MethodGet, "/slow", "", nil, 0)
		if err != nil {
			slow <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		slow <- resp.Status + " " + string(body)
	}()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow request did not reach the app")
	}

	if err := g.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A client with no kept connections, as a load balancer's probe.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	status := func(path string) int {
		resp, err := probe.Get(g.base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if !waitFor(10*time.Second, func() bool { return status("/.postern/readyz") == http.StatusServiceUnavailable }) {
		t.Fatalf("readyz did not turn 503 after SIGTERM:\n%s", g.out.String())
	}
	// Still serving during the delay: health, and the app for a session.
	if got := status("/.postern/healthz"); got != http.StatusOK {
		t.Errorf("healthz during the drain: %d, want 200", got)
	}
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/during-drain", "", nil), http.StatusOK)

	// After the delay the listener closes; the slow request is still held.
	if !waitFor(30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(g.base, "http://"), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}) {
		t.Fatal("the listener did not close after the shutdown delay")
	}
	select {
	case got := <-slow:
		t.Fatalf("the slow request ended before its answer: %s", got)
	case <-g.exited:
		t.Fatal("postern exited with a request in flight")
	default:
	}
	close(release)
	select {
	case got := <-slow:
		if got != "200 OK slow answer" {
			t.Errorf("the in-flight request got %q, want 200 and its answer", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the in-flight request did not complete")
	}
	select {
	case <-g.exited:
		if g.err != nil {
			t.Errorf("postern exited with %v, want 0:\n%s", g.err, g.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("postern did not exit after the in-flight request completed")
	}
	// The access log is on by default: the request during the drain and
	// the slow one each have their line.
	for _, want := range []string{"msg=access method=GET path=/during-drain status=200", "msg=access method=GET path=/slow status=200 bytes=11"} {
		if !strings.Contains(g.out.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, g.out.String())
		}
	}
	if !strings.Contains(g.out.String(), `msg="shutting down" delay=4s grace=1m0s`) {
		t.Errorf("no shutdown line with the delay and grace:\n%s", g.out.String())
	}
}
