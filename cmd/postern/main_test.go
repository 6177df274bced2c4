package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/cmd/postern/internal/config"
)

// runCmd runs postern in-process with the given stdin and no environment.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(string) string { return "" },
	})
	return code, out.String(), errb.String()
}

var testSecret = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfig(t *testing.T) {
	users := writeTemp(t, "users", "demo:$2y$12$0123456789012345678901u012345678901234567890123456789\n")
	good := writeTemp(t, "good.yaml", "upstream: http://127.0.0.1:3000\ncookie_secret: "+testSecret+"\nhtpasswd_file: "+users+"\n")
	code, out, errOut := runCmd(t, "", "check-config", "--config", good)
	if code != 0 || !strings.HasPrefix(out, "config ok: ") || !strings.Contains(out, "http://127.0.0.1:3000") || strings.Count(out, "\n") != 1 {
		t.Errorf("good config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(out, testSecret) {
		t.Error("summary shows the cookie secret")
	}

	bad := writeTemp(t, "bad.yaml", "listen: nowhere\nstash_ttl: later\nupstrem: http://x\n")
	code, out, errOut = runCmd(t, "", "check-config", "--config", bad)
	if code != exitConfig || out != "" {
		t.Errorf("bad config: exit %d, stdout %q", code, out)
	}
	for _, w := range []string{"problems with the settings", "listen:", "stash_ttl", `unknown key "upstrem"`, "cookie_secret: required", "login: no login method", "upstream: required"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

func TestCommands(t *testing.T) {
	if code, out, _ := runCmd(t, "", "version"); code != 0 || !strings.HasPrefix(out, "postern ") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ := runCmd(t, "", "help")
	for _, w := range []string{"postern demo", "hash-password", "check-config", "-stash-max-body", "POSTERN_"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("help lacks %q (exit %d)", w, code)
		}
	}
	if code, _, errOut := runCmd(t, "", "frobnicate"); code != exitConfig || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "", "--cookie-secret=short"); code != exitConfig || !strings.Contains(errOut, "cookie_secret:") {
		t.Errorf("run with bad settings: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "", "demo", "--listen", "0.0.0.0:8080"); code != exitConfig || !strings.Contains(errOut, "loopback only") {
		t.Errorf("demo off loopback: %d %q", code, errOut)
	}
}

func TestHashPasswordInput(t *testing.T) {
	fake := func(user, pw string) (string, error) { return user + ":hash(" + pw + ")", nil }
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		out         string
	}{
		{"user flag, password from stdin", "s3cret\n", []string{"--user", "alice", "--password-stdin"}, 0, "alice:hash(s3cret)\n"},
		{"stdin not a terminal", "s3cret", []string{"--user", "alice"}, 0, "alice:hash(s3cret)\n"},
		{"prompted user", "bob\r\npw word\n", nil, 0, "bob:hash(pw word)\n"},
		{"colon in user", "pw\n", []string{"--user", "a:b"}, exitConfig, ""},
		{"empty password", "\n", []string{"--user", "a"}, exitConfig, ""},
		{"no input", "", []string{"--user", "a"}, exitFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runHashPassword(tt.args, env{stdin: strings.NewReader(tt.stdin), stdout: &out, stderr: &errb}, fake)
			if code != tt.code || out.String() != tt.out {
				t.Errorf("exit %d stdout %q (stderr %q), want %d %q", code, out.String(), errb.String(), tt.code, tt.out)
			}
		})
	}
}

// fakeBuild stands in for wire so serve can be tested without a store.
func fakeBuild(closed *bool) builder {
	return func(ctx context.Context, cfg *config.Config, public *url.URL, logger *slog.Logger) (built, error) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "gateway "+public.String()) })
		a := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })
		return built{handler: h, admin: a, close: func() error { *closed = true; return nil }}, nil
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestServeStartsLogsAndShutsDown(t *testing.T) {
	cfg, err := config.Load([]string{
		"--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0", "--upstream=http://127.0.0.1:3000",
		"--cookie-secret=" + testSecret, "--store=redis://:hunter2@127.0.0.1:1/0",
	}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	publicc := make(chan *url.URL, 1)
	done := make(chan error, 1)
	closed := false
	go func() {
		done <- serve(ctx, cfg, logger, fakeBuild(&closed), func(p *url.URL) { publicc <- p })
	}()
	var public *url.URL
	select {
	case public = <-publicc:
	case err := <-done:
		t.Fatalf("serve returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}

	if public.Port() == "0" || public.Hostname() != "127.0.0.1" {
		t.Errorf("public URL %s: want the real port of 127.0.0.1:0", public)
	}
	if body := get(t, public.String()+"/"); body != "gateway "+public.String() {
		t.Errorf("gateway answered %q", body)
	}
	line := logs.String()
	for _, w := range []string{"postern started", "listen=" + public.Host, "public_url=" + public.String(), "http://127.0.0.1:3000", "store=redis", "admin_listen=127.0.0.1:"} {
		if !strings.Contains(line, w) {
			t.Errorf("start-up line lacks %q: %s", w, line)
		}
	}
	if strings.Contains(line, "hunter2") || strings.Contains(line, testSecret) {
		t.Errorf("start-up line leaks a secret: %s", line)
	}
	admin := line[strings.Index(line, "admin_listen=")+len("admin_listen="):]
	admin = strings.Fields(admin)[0]
	if body := get(t, "http://"+admin+"/metrics"); body != "metrics" {
		t.Errorf("admin answered %q", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !closed {
		t.Error("the store was not closed on shutdown")
	}
	if _, err := net.Dial("tcp", public.Host); err == nil {
		t.Error("still listening after shutdown")
	}
}

func TestServeExplainsBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := &config.Config{Server: config.Server{Listen: ln.Addr().String()}}
	closed := false
	err = serve(context.Background(), cfg, slog.New(slog.DiscardHandler), fakeBuild(&closed), nil)
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--listen 127.0.0.1:0") {
		t.Errorf("busy address: %v", err)
	}
}

func TestServerLimits(t *testing.T) {
	s := newServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout < time.Minute || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 || s.ErrorLog == nil {
		t.Errorf("server without limits: %+v", s)
	}
}

func TestRoutesInheritTheGlobalPolicy(t *testing.T) {
	cfg := &config.Config{
		Allow: config.Allow{Domains: []string{"example.com"}},
		Routes: []config.Route{
			{Host: "a.example", Upstream: "http://127.0.0.1:1"},
			{PathPrefix: "/admin", Upstream: "http://127.0.0.1:2", Allow: config.Allow{Groups: []string{"admins"}}},
		},
	}
	routes, err := gatewayRoutes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 2 || routes[0].Host != "a.example" || routes[0].Upstream.Host != "127.0.0.1:1" {
		t.Fatalf("routes %+v", routes)
	}
	if len(routes[0].Policy.Domains) != 1 || routes[0].Policy.Domains[0] != "example.com" {
		t.Errorf("route without policy: %+v, want the global one", routes[0].Policy)
	}
	if len(routes[1].Policy.Groups) != 1 || len(routes[1].Policy.Domains) != 0 || routes[1].PathPrefix != "/admin" {
		t.Errorf("route with its own policy: %+v", routes[1].Policy)
	}

	single, err := gatewayRoutes(&config.Config{Upstream: "http://127.0.0.1:3", Allow: cfg.Allow})
	if err != nil || len(single) != 1 || single[0].Upstream.String() != "http://127.0.0.1:3" || len(single[0].Policy.Domains) != 1 {
		t.Errorf("single upstream: %+v %v", single, err)
	}
}

func TestDemoLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.1:0": true, "localhost:8080": true, "[::1]:8080": true,
		"0.0.0.0:8080": false, ":8080": false, "192.168.1.2:8080": false, "example.com:80": false, "nope": false,
	} {
		if err := loopbackOnly(addr); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q) = %v", addr, err)
		}
	}
}
