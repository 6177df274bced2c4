package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// target is one thing under load: a URL and the headers that authenticate.
type target struct {
	name   string
	url    string
	header map[string]string
	user   string // the identity the upstream must see; empty for bare
}

// result is what one measurement of one target gave.
type result struct {
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"` // socket errors and non-2xx answers
	Elapsed  time.Duration `json:"elapsed"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	Conns    int64         `json:"-"` // new upstream connections during it
}

func (r result) rps() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// loader puts load on a target for a while.
type loader interface {
	name() string
	run(ctx context.Context, t target, conns int, d time.Duration) (result, error)
}

// wrkLoader runs wrk -t1 (one thread, so one CPU, like the Go loader).
type wrkLoader struct{ path string }

func findWrk() (*wrkLoader, error) {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return nil, errNoWrk
	}
	return &wrkLoader{path: p}, nil
}

func (w *wrkLoader) name() string { return "wrk -t1" }

func (w *wrkLoader) run(ctx context.Context, t target, conns int, d time.Duration) (result, error) {
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(max(d.Seconds(), 1))) + "s", "--latency"}
	for k, v := range t.header {
		args = append(args, "-H", k+": "+v)
	}
	args = append(args, t.url)
	out, err := exec.CommandContext(ctx, w.path, args...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(out string) (result, error) {
	var r result
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output not understood: %s", out)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Elapsed = wrkDuration(m[2], m[3])
	for _, m := range wrkLatency.FindAllStringSubmatch(out, -1) {
		d := wrkDuration(m[2], m[3])
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	return r, nil
}

func wrkDuration(num, unit string) time.Duration {
	f, _ := strconv.ParseFloat(num, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	case "m":
		return time.Duration(f * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Second))
}

// goLoader runs the Go load generator in a child process (this same
// program) pinned to one CPU with GOMAXPROCS=1, so it takes what wrk -t1
// would take from the machine.
type goLoader struct{}

func (goLoader) name() string { return "Go load generator (1 CPU)" }

// roleEnv tells a child process which part of the bench it plays.
const roleEnv = "POSTERN_BENCH_ROLE"

func (goLoader) run(ctx context.Context, t target, conns int, d time.Duration) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	spec, _ := json.Marshal(loadSpec{URL: t.url, Header: t.header, Conns: conns, Duration: d})
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), roleEnv+"=load", "GOMAXPROCS=1")
	cmd.Stdin = strings.NewReader(string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("load generator: %w", err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("load generator output: %w", err)
	}
	return r, nil
}

// loadSpec is what the parent tells the load child.
type loadSpec struct {
	URL      string            `json:"url"`
	Header   map[string]string `json:"header"`
	Conns    int               `json:"conns"`
	Duration time.Duration     `json:"duration"`
}

// loadChild is the load generator's process: it reads a loadSpec on stdin
// and writes a result on stdout.
func loadChild() error {
	runtime.GOMAXPROCS(1)
	// Pin to the last CPU, as taskset would; failing to pin is not fatal
	// (GOMAXPROCS=1 already bounds what it uses).
	var set unix.CPUSet
	set.Set(runtime.NumCPU() - 1)
	_ = unix.SchedSetaffinity(0, &set)
	var spec loadSpec
	if err := json.NewDecoder(bufio.NewReader(os.Stdin)).Decode(&spec); err != nil {
		return fmt.Errorf("load spec: %w", err)
	}
	r := generate(spec)
	return json.NewEncoder(os.Stdout).Encode(r)
}

// generate keeps spec.Conns requests in flight for spec.Duration over
// keep-alive connections and reports the throughput and latency percentiles.
func generate(spec loadSpec) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: spec.Conns, MaxConnsPerHost: spec.Conns, DisableCompression: true}}
	deadline := time.Now().Add(spec.Duration)
	var mu sync.Mutex
	var all []time.Duration
	var errs int64
	var wg sync.WaitGroup
	start := time.Now()
	for range spec.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var bad int64
			req, _ := http.NewRequest(http.MethodGet, spec.URL, nil)
			for k, v := range spec.Header {
				req.Header.Set(k, v)
			}
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					bad++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					bad++
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := result{Requests: int64(len(all)), Errors: errs, Elapsed: time.Since(start)}
	slices.Sort(all)
	if n := len(all); n > 0 {
		r.P50 = all[n/2]
		r.P99 = all[min(n-1, n*99/100)]
	}
	return r
}
