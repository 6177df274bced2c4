// Command postern-bench measures what postern costs on the request path,
// against a bare httputil.ReverseProxy on the same machine, in one run:
//
//	go run ./cmd/postern-bench
//
// It starts a small upstream app, a bare reverse proxy with a tuned
// transport (the limit of Go's net/http here), and postern with local
// users, OIDC (a real login at an in-process OpenID provider) and bearer
// JWTs (RS256, from a JWKS it serves). It checks that every target answers
// 200 from the upstream, then loads each in turn with wrk -t1 (or, without
// wrk, a Go load generator pinned to one CPU), in rounds, and prints
// requests per second, the ratio to the bare proxy, p50 and p99 latency and
// new upstream connections per 1,000 requests. It then measures the stash
// path: the extra latency of a kept submission's login and replay over a
// plain login, and the gateway's peak memory with 1,000 pending 1 MiB
// stashes. docs/performance.md explains the numbers.
//
// Everything listens on 127.0.0.1 only. Machines are noisy: compare the
// ratios of one run, never absolute numbers across runs.
//
// It uses the repository's test helpers (auth/oidc/oidctest,
// gateway/gatewaytest) and is a measuring tool, not part of the product.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"time"
)

// config is what the flags set.
type config struct {
	duration   time.Duration // per target and round
	warmup     time.Duration
	rounds     int
	conns      int
	store      string // "file" or a redis:// URL
	redisURL   string // for the stash memory measurement on Redis
	goLoad     bool   // use the Go load generator even when wrk is present
	stash      bool
	stashCount int
	cpuProfile string
	profile    string // target whose load is profiled
	out        io.Writer
}

func main() {
	if os.Getenv(roleEnv) != "" {
		if err := child(os.Getenv(roleEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "postern-bench:", err)
			os.Exit(1)
		}
		return
	}
	cfg := config{out: os.Stdout}
	quick := flag.Bool("quick", false, "a short run that only shows everything works (numbers meaningless)")
	flag.DurationVar(&cfg.duration, "duration", 8*time.Second, "load per target and round")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured load before each measurement")
	flag.IntVar(&cfg.rounds, "rounds", 2, "rounds over all targets (interleaved, so drift hits all alike)")
	flag.IntVar(&cfg.conns, "c", 32, "concurrent connections")
	flag.StringVar(&cfg.store, "store", "file", `postern's store: "file" or a redis:// URL`)
	flag.StringVar(&cfg.redisURL, "redis", os.Getenv("POSTERN_TEST_REDIS_URL"), "Redis URL for the stash memory measurement on Redis (skipped if empty)")
	flag.BoolVar(&cfg.goLoad, "go", false, "use the Go load generator even if wrk is installed")
	flag.BoolVar(&cfg.stash, "stash", true, "measure the stash path (latency and memory)")
	flag.IntVar(&cfg.stashCount, "stash-count", 1000, "pending 1 MiB stashes for the memory measurement")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the load on -profile's target to this file")
	flag.StringVar(&cfg.profile, "profile", "oidc", "target profiled with -cpuprofile: bare, local, oidc or bearer")
	flag.Parse()
	if *quick {
		cfg.duration, cfg.warmup, cfg.rounds, cfg.stashCount = time.Second, 200*time.Millisecond, 1, 20
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "postern-bench:", err)
		os.Exit(1)
	}
}

// run measures everything cfg asks for and prints the tables.
func run(ctx context.Context, cfg config) error {
	r := &runner{}
	defer r.close()
	return guard(func() error {
		ld, err := pickLoader(cfg)
		if err != nil {
			return err
		}
		targets, up, err := setUp(r, cfg)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if err := check(t); err != nil {
				return fmt.Errorf("before measuring: %w", err)
			}
		}
		started := time.Now()
		fmt.Fprintf(cfg.out, "postern-bench %s: %s, %d connections, %s per target, %d round(s), store %s\n",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), ld.name(), cfg.conns, cfg.duration, cfg.rounds, storeName(cfg.store))
		results, err := measure(ctx, cfg, ld, targets, up)
		if err != nil {
			return err
		}
		printTable(cfg.out, targets, results)
		fmt.Fprintf(cfg.out, "(load took %s)\n", time.Since(started).Round(time.Second))
		if cfg.stash {
			if err := measureStash(ctx, r, cfg); err != nil {
				return err
			}
		}
		return nil
	})
}

func pickLoader(cfg config) (loader, error) {
	if !cfg.goLoad {
		if w, err := findWrk(); err == nil {
			return w, nil
		}
	}
	return goLoader{}, nil
}

func storeName(s string) string {
	if strings.HasPrefix(s, "redis") {
		return "redis"
	}
	return s
}

// setUp starts the upstream and every target, logs in, and returns the
// targets in the order they are measured.
func setUp(r *runner, cfg config) ([]target, *upstream, error) {
	up, err := startUpstream()
	if err != nil {
		return nil, nil, err
	}
	r.Cleanup(func() { _ = up.srv.Close() })
	bare, err := serve(r, bareProxy(mustURL(up.url)))
	if err != nil {
		return nil, nil, err
	}
	is, err := startJWTIssuer(r)
	if err != nil {
		return nil, nil, err
	}
	// The access log is on, as in production (info level), written to a
	// discarding sink: its cost is measured, not the disk's.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := startPostern(r, gatewayConfig{upstream: up.url, store: cfg.store, oidc: true, jwt: is, log: logger})
	if err != nil {
		return nil, nil, err
	}
	oidcCookie, err := p.oidcCookie(r)
	if err != nil {
		return nil, nil, err
	}
	tok, err := is.token(time.Hour)
	if err != nil {
		return nil, nil, err
	}
	page := "/app/page"
	return []target{
		{name: "bare", url: bare + page},
		{name: "local", url: p.url + page, header: map[string]string{"Cookie": p.localCookie(r)}, user: benchUser},
		{name: "oidc", url: p.url + page, header: map[string]string{"Cookie": oidcCookie}, user: "alice"},
		{name: "bearer", url: p.url + page, header: map[string]string{"Authorization": "Bearer " + tok, "Accept": "application/json"}, user: "svc"},
	}, up, nil
}

// measure loads every target once per round, in turn, and returns each
// target's rounds.
func measure(ctx context.Context, cfg config, ld loader, targets []target, up *upstream) (map[string][]result, error) {
	results := map[string][]result{}
	for round := range cfg.rounds {
		for _, t := range targets {
			if cfg.warmup > 0 {
				if _, err := ld.run(ctx, t, cfg.conns, cfg.warmup); err != nil {
					return nil, err
				}
			}
			stopProfile, err := startProfile(cfg, t.name, round)
			if err != nil {
				return nil, err
			}
			before := up.conns.Load()
			res, err := ld.run(ctx, t, cfg.conns, cfg.duration)
			stopProfile()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			res.Conns = up.conns.Load() - before
			if res.Errors > 0 {
				return nil, fmt.Errorf("%s: %d of %d requests failed", t.name, res.Errors, res.Requests)
			}
			fmt.Fprintf(os.Stderr, "round %d %-7s %8.0f req/s  p50 %-8s p99 %s\n", round+1, t.name, res.rps(), res.P50, res.P99)
			results[t.name] = append(results[t.name], res)
		}
	}
	return results, nil
}

// startProfile profiles the first round's load on the chosen target.
func startProfile(cfg config, name string, round int) (func(), error) {
	if cfg.cpuProfile == "" || name != cfg.profile || round != 0 {
		return func() {}, nil
	}
	f, err := os.Create(cfg.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// printTable prints one line per target: the sum over rounds.
func printTable(w io.Writer, targets []target, results map[string][]result) {
	sum := func(name string) result {
		var s result
		for _, r := range results[name] {
			s.Requests += r.Requests
			s.Elapsed += r.Elapsed
			s.Conns += r.Conns
			// Percentiles: the worst round's, so a quiet round hides nothing.
			s.P50 = max(s.P50, r.P50)
			s.P99 = max(s.P99, r.P99)
		}
		return s
	}
	bare := sum("bare").rps()
	local := sum("oidc").rps()
	fmt.Fprintf(w, "\n| target | req/s | × bare | p50 | p99 | new upstream conns / 1,000 req |\n|---|---|---|---|---|---|\n")
	for _, t := range targets {
		s := sum(t.name)
		ratio := fmt.Sprintf("%.2f×", s.rps()/bare)
		if t.name == "bearer" {
			ratio += fmt.Sprintf(" (%.2f× oidc cookie)", s.rps()/local)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %.2f |\n", label(t.name), s.rps(), ratio,
			s.P50.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), float64(s.Conns)*1000/float64(max(s.Requests, 1)))
	}
}

func label(name string) string {
	switch name {
	case "bare":
		return "bare httputil.ReverseProxy, tuned transport"
	case "local":
		return "postern, local-user cookie"
	case "oidc":
		return "postern, OIDC cookie"
	case "bearer":
		return "postern, bearer JWT (RS256)"
	}
	return name
}

// child runs the part of the bench a child process plays.
func child(role string) error {
	switch role {
	case "load":
		return loadChild()
	case "gateway":
		return gatewayChild()
	}
	return fmt.Errorf("unknown %s %q", roleEnv, role)
}
