package filestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/sessiontest"
)

// fakeClock is a settable clock for expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openTemp(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "postern.db")
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func TestConformance(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) session.Backend {
		s, _ := openTemp(t)
		return s
	})
}

// TestReplayConformance runs the replay state machine suite on the file
// store.
func TestReplayConformance(t *testing.T) {
	sessiontest.RunReplay(t, func(t *testing.T) session.Backend {
		s, _ := openTemp(t)
		return s
	})
}

func TestRestartKeepsStashes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "postern.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 20_000) // several chunks
	if _, err := s.PutBlob(ctx, "stash:a", []byte("meta"), bytes.NewReader(body), 1<<20, time.Hour); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if err := s.Set(ctx, "sess:x", []byte("who"), time.Hour); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Ping after Close: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "sess:x"); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Get after Close: err = %v, want ErrUnavailable", err)
	}

	s2, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if v, err := s2.Get(ctx, "sess:x"); err != nil || string(v) != "who" {
		t.Fatalf("Get after reopen = %q, %v", v, err)
	}
	meta, rc, err := s2.TakeBlob(ctx, "stash:a")
	if err != nil {
		t.Fatalf("TakeBlob after reopen: %v", err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || string(meta) != "meta" || !bytes.Equal(got, body) {
		t.Fatalf("after reopen: meta %q, body equal %v, err %v", meta, bytes.Equal(got, body), err)
	}
	if _, _, err := s2.TakeBlob(ctx, "stash:a"); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("second TakeBlob after reopen: err = %v, want ErrTaken", err)
	}
}

func TestTakenStaysTakenAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "postern.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.PutBlob(ctx, "stash:a", nil, strings.NewReader("x"), 10, time.Hour); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if _, rc, err := s.TakeBlob(ctx, "stash:a"); err != nil {
		t.Fatalf("TakeBlob: %v", err)
	} else {
		_ = rc.Close()
	}
	_ = s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	// A replay in flight when the process died must not happen again.
	if _, _, err := s2.TakeBlob(ctx, "stash:a"); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("TakeBlob after restart: err = %v, want ErrTaken", err)
	}
}

func TestExpiryWithClock(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, WithClock(clk.Now), WithSweepInterval(0))
	if err := s.Set(ctx, "r", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlob(ctx, "b", nil, strings.NewReader("body"), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	if _, err := s.Get(ctx, "r"); err != nil {
		t.Fatalf("Get just before expiry: %v", err)
	}
	clk.Advance(time.Nanosecond)
	if _, err := s.Get(ctx, "r"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get at expiry: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetDelete(ctx, "r"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("GetDelete at expiry: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.TakeBlob(ctx, "b"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("TakeBlob at expiry: err = %v, want ErrNotFound", err)
	}
}

// counts returns how many keys each bucket holds; for "chunks" that is one
// per upload's bucket plus one per chunk.
func counts(t *testing.T, s *Store) map[string]int {
	t.Helper()
	c := map[string]int{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketBlobs, bucketUploads, bucketChunks} {
			c[string(name)] = tx.Bucket(name).Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, WithClock(clk.Now), WithSweepInterval(0))
	big := bytes.Repeat([]byte{7}, 5*chunkSize+3)
	for _, k := range []string{"short1", "short2"} {
		if err := s.Set(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutBlob(ctx, k, nil, bytes.NewReader(big), 1<<20, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, "long", []byte("v"), 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlob(ctx, "long", nil, bytes.NewReader(big), 1<<20, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	// A taken blob lives on until session.TakenTTL after its take (its
	// body must stay readable to the end of a replay), then expires.
	if _, rc, err := s.TakeBlob(ctx, "short2"); err != nil {
		t.Fatal(err)
	} else {
		_ = rc.Close()
	}
	// An upload abandoned mid-body (as after a crash) is swept once its ttl
	// and session.UploadGrace have passed.
	if _, err := s.startUpload(time.Minute); err != nil {
		t.Fatal(err)
	}

	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry = %d, %v; want 0", n, err)
	}
	clk.Advance(time.Minute)
	n, err := s.Sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if n != 3 { // 2 records, 1 blob; the taken blob and the upload live on
		t.Fatalf("Sweep removed %d entries, want 3", n)
	}
	clk.Advance(session.TakenTTL)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep after TakenTTL = %d, %v; want the taken blob", n, err)
	}
	clk.Advance(session.UploadGrace)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep after UploadGrace = %d, %v; want the abandoned upload", n, err)
	}
	c := counts(t, s)
	// What is left: the long record and blob, with its bucket of 6 chunks.
	want := map[string]int{"records": 1, "blobs": 1, "uploads": 0, "chunks": 1 + 6}
	for k, v := range want {
		if c[k] != v {
			t.Fatalf("after sweep %s holds %d keys, want %d (all: %v)", k, c[k], v, c)
		}
	}
	if _, rc, err := s.TakeBlob(ctx, "long"); err != nil {
		t.Fatalf("TakeBlob of the unexpired blob: %v", err)
	} else {
		got, _ := io.ReadAll(rc)
		_ = rc.Close()
		if !bytes.Equal(got, big) {
			t.Fatal("the unexpired blob's body changed")
		}
	}
}

func TestBackgroundSweeper(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	tick := make(chan time.Time)
	swept := make(chan int, 1)
	s, _ := openTemp(t, WithClock(clk.Now), func(c *config) {
		c.hooks.tick = tick
		c.hooks.onSweep = func(n int, err error) {
			if err != nil {
				t.Errorf("sweep: %v", err)
			}
			swept <- n
		}
	})
	if err := s.Set(ctx, "r", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	tick <- clk.Now()
	select {
	case n := <-swept:
		if n != 1 {
			t.Fatalf("background sweep removed %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("background sweeper did not run")
	}
	if c := counts(t, s); c["records"] != 0 {
		t.Fatalf("records left after the background sweep: %d", c["records"])
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close stopped the loop: nobody receives a tick any more.
	select {
	case tick <- clk.Now():
		t.Fatal("sweeper still running after Close")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestFailedPutLeavesNoChunks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, WithSweepInterval(0))
	big := bytes.Repeat([]byte{1}, 40*chunkSize) // spans several write batches
	if _, err := s.PutBlob(ctx, "b", nil, bytes.NewReader(big), 20*chunkSize, time.Hour); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("PutBlob over the limit: err = %v, want ErrTooLarge", err)
	}
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(big[:20*chunkSize]), &errReader{boom})
	if _, err := s.PutBlob(ctx, "c", nil, r, 1<<30, time.Hour); !errors.Is(err, boom) || errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("PutBlob with a failing body: err = %v, want the body's error and not ErrUnavailable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cr := &cancelAfter{r: bytes.NewReader(big), n: 18 * chunkSize, cancel: cancel}
	if _, err := s.PutBlob(cctx, "d", nil, cr, 1<<30, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutBlob cancelled mid-body: err = %v, want context.Canceled", err)
	}
	c := counts(t, s)
	if c["blobs"] != 0 || c["uploads"] != 0 || c["chunks"] != 0 {
		t.Fatalf("failed uploads left entries behind: %v", c)
	}
}

func TestReplaceBlobRemovesOldChunks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, WithSweepInterval(0))
	for _, body := range []string{strings.Repeat("a", 3*chunkSize), "new"} {
		if _, err := s.PutBlob(ctx, "b", nil, strings.NewReader(body), 1<<30, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if c := counts(t, s); c["chunks"] != 1+1 {
		t.Fatalf("chunk keys after replacing a blob: %d, want 2 (one bucket, one chunk)", c["chunks"])
	}
	if err := s.DeleteBlob(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, s); c["chunks"] != 0 || c["blobs"] != 0 {
		t.Fatalf("entries after DeleteBlob: %v", c)
	}
}

func TestReaderAfterDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, WithSweepInterval(0))
	if _, err := s.PutBlob(ctx, "b", nil, bytes.NewReader(make([]byte, 3*chunkSize)), 1<<30, time.Hour); err != nil {
		t.Fatal(err)
	}
	_, rc, err := s.TakeBlob(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBlob(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("reading a deleted blob: err = %v, want ErrNotFound", err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the file lock timeout")
	}
	_, path := openTemp(t)
	if s2, err := Open(path); err == nil {
		_ = s2.Close()
		t.Fatal("a second Open of a file in use succeeded")
	} else if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("second Open: err = %v, want ErrUnavailable", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// cancelAfter cancels its context once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}
