package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the bench's child processes (the Go
// load generator, the gateway measured for memory), as the command does.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := child(role); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A very short run of everything the bench does, with the Go load
// generator: every target answers from the upstream with the right
// identity, and every table is printed. The numbers mean nothing here.
func TestQuickRun(t *testing.T) {
	var out strings.Builder
	cfg := config{duration: 300 * time.Millisecond, rounds: 1, conns: 4, store: "file", goLoad: true,
		stash: true, stashCount: 5, profile: "oidc", out: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"bare httputil.ReverseProxy", "postern, local-user cookie", "postern, OIDC cookie",
		"postern, bearer JWT (RS256)", "oidc cookie)", "| 1 KiB |", "| 1 MiB |", "| file |", "5 of 5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 8s test @ http://127.0.0.1:1/app/page
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.93ms    1.03ms  22.61ms   85.30%
    Req/Sec    11.01k   523.37    11.87k    81.25%
  Latency Distribution
     50%    2.71ms
     75%    3.10ms
     90%    3.81ms
     99%    6.88ms
  87619 requests in 8.00s, 16.46MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  10949.93
Transfer/sec:      2.06MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 87619 || r.Elapsed != 8*time.Second || r.P50 != 2710*time.Microsecond || r.P99 != 6880*time.Microsecond || r.Errors != 3 {
		t.Fatalf("parsed %+v", r)
	}
}
