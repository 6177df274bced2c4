package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// runner lets the bench use the repository's test helpers (the in-process
// OIDC provider, the scripted browser), which take a testing.TB. Only the
// methods those helpers call are implemented; a failure panics with a
// benchFailure that main turns into an error message.
type runner struct {
	testing.TB // nil: any other method panics, which is a bug in the bench

	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

type benchFailure struct{ msg string }

func (r *runner) Helper()                         {}
func (r *runner) Name() string                    { return "postern-bench" }
func (r *runner) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (r *runner) Log(args ...any)                 { fmt.Fprintln(os.Stderr, args...) }
func (r *runner) Errorf(format string, args ...any) {
	panic(benchFailure{fmt.Sprintf(format, args...)})
}
func (r *runner) Fatalf(format string, args ...any) {
	panic(benchFailure{fmt.Sprintf(format, args...)})
}
func (r *runner) Fatal(args ...any) { panic(benchFailure{fmt.Sprint(args...)}) }
func (r *runner) Error(args ...any) { panic(benchFailure{fmt.Sprint(args...)}) }
func (r *runner) Failed() bool      { return false }

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runner) TempDir() string {
	d, err := os.MkdirTemp("", "postern-bench-")
	if err != nil {
		panic(benchFailure{fmt.Sprintf("temp dir: %v", err)})
	}
	r.mu.Lock()
	r.dirs = append(r.dirs, d)
	r.mu.Unlock()
	return d
}

// close runs the cleanups, last registered first, and removes temp dirs.
func (r *runner) close() {
	r.mu.Lock()
	cs, ds := r.cleanups, r.dirs
	r.cleanups, r.dirs = nil, nil
	r.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range ds {
		_ = os.RemoveAll(d)
	}
}

// guard runs f, turning a benchFailure panic into an error.
func guard(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			bf, ok := v.(benchFailure)
			if !ok {
				panic(v)
			}
			err = fmt.Errorf("%s", bf.msg)
		}
	}()
	return f()
}
