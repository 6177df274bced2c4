package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

// measureStash reports the stash path: what a kept submission adds to a
// login, and the gateway's peak memory with many stashes pending.
func measureStash(ctx context.Context, r *runner, cfg config) error {
	up, err := startUpstream()
	if err != nil {
		return err
	}
	r.Cleanup(func() { _ = up.srv.Close() })
	p, err := startPostern(r, gatewayConfig{upstream: up.url, store: cfg.store,
		log: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		return err
	}
	iters := map[int]int{1 << 10: 40, 1 << 20: 15}
	if cfg.stashCount < 1000 { // -quick
		iters = map[int]int{1 << 10: 3, 1 << 20: 2}
	}
	fmt.Fprintf(cfg.out, "\nStash path (store %s): login + replay against a plain login, same run, mean of interleaved tries\n\n", storeName(cfg.store))
	fmt.Fprintf(cfg.out, "| body | plain login | login + replay | extra |\n|---|---|---|---|\n")
	for _, size := range []int{1 << 10, 1 << 20} {
		body := bytes.Repeat([]byte("x"), size)
		var plain, kept time.Duration
		n := iters[size]
		for range n {
			plain += timed(func() { plainLogin(r, p.url) })
			kept += timed(func() { stashLogin(r, p.url, body) })
		}
		plain, kept = plain/time.Duration(n), kept/time.Duration(n)
		fmt.Fprintf(cfg.out, "| %s | %s | %s | %s |\n", sizeName(size), plain.Round(10*time.Microsecond),
			kept.Round(10*time.Microsecond), (kept - plain).Round(10*time.Microsecond))
	}
	fmt.Fprintf(cfg.out, "\nGateway memory with %d pending 1 MiB stashes (peak RSS, VmHWM, of a gateway process of its own)\n\n", cfg.stashCount)
	fmt.Fprintf(cfg.out, "| store | VmHWM at start | VmHWM after | stashes kept |\n|---|---|---|---|\n")
	stores := []string{"file"}
	if cfg.redisURL != "" {
		stores = append(stores, cfg.redisURL)
	}
	for _, st := range stores {
		if err := stashMemory(ctx, cfg, st); err != nil {
			return fmt.Errorf("stash memory (%s): %w", storeName(st), err)
		}
	}
	return nil
}

func timed(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}

// plainLogin is a person logging in from the login page: GET it, post it,
// follow the 303 to the app.
func plainLogin(r *runner, base string) {
	b := gatewaytest.NewBrowser(r, base)
	page := gatewaytest.ExpectStatus(r, b.Do(http.MethodGet, "/.postern/login?rd=/app/done", "", nil), http.StatusOK)
	b.Follow(b.Login(gatewaytest.HiddenFields(page), benchUser, benchPassword), http.StatusOK)
}

// stashLogin is a submission without a session: 307 into the login (the
// browser re-sends the body), the login, the replay, the kept answer.
func stashLogin(r *runner, base string, body []byte) {
	b := gatewaytest.NewBrowser(r, base)
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/app/submit", "application/octet-stream", body)
	b.Follow(b.Login(f, benchUser, benchPassword), http.StatusOK)
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + " MiB"
	}
	return strconv.Itoa(n>>10) + " KiB"
}

// stashMemory starts a gateway process on store, keeps cfg.stashCount 1 MiB
// submissions pending in it, and reports its VmHWM.
func stashMemory(ctx context.Context, cfg config, store string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "postern-bench-stash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), roleEnv+"=gateway", "POSTERN_BENCH_STORE="+store, "POSTERN_BENCH_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("gateway child: %w", err)
	}
	base := strings.TrimSpace(line)
	start, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return err
	}
	body := bytes.Repeat([]byte("s"), 1<<20)
	var kept, failed atomic.Int64
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: time.Minute}
			for range next {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/app/submit", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("Accept", "text/html")
				req.Header.Set("Origin", base)
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTemporaryRedirect {
					kept.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	for range cfg.stashCount {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	peak, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.out, "| %s | %.1f MiB | %.1f MiB | %d of %d |\n", storeName(store), float64(start)/1024, float64(peak)/1024, kept.Load(), cfg.stashCount)
	if failed.Load() > 0 {
		return fmt.Errorf("%d submissions were not stashed", failed.Load())
	}
	return nil
}

// vmHWM returns a process's peak resident set size in KiB.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("VmHWM: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// gatewayChild is a gateway process of its own (for its memory): local
// users on the store named by POSTERN_BENCH_STORE, a 2 MiB stash limit. It
// prints its URL and serves until stdin closes.
func gatewayChild() error {
	r := &runner{}
	defer r.close()
	return guard(func() error {
		up, err := startUpstream()
		if err != nil {
			return err
		}
		store := os.Getenv("POSTERN_BENCH_STORE")
		p, err := startPostern(r, gatewayConfig{upstream: up.url, store: store, stashTTL: 3 * time.Minute,
			log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			return err
		}
		fmt.Println(p.url)
		_, _ = io.Copy(io.Discard, os.Stdin)
		return nil
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(benchFailure{err.Error()})
	}
	return u
}
