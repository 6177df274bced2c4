package sessiontest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/session"
)

const (
	ttl = time.Minute
	// expiryTTL is the short ttl of the expiry tests, which wait in real
	// time: the suite cannot reach a backend's clock.
	expiryTTL = 700 * time.Millisecond
	// expiryWait bounds how long an expired entry may take to disappear.
	expiryWait = 10 * time.Second
	// chunk is a size blobs are commonly cut at (DARE packages, bbolt
	// chunks); the boundary sizes around it are tested.
	chunk = 64 << 10
)

// Run runs the conformance suite. newBackend must return a fresh, empty
// backend, closed by the caller's t.Cleanup. Subtests run in parallel on
// their own backends.
func Run(t *testing.T, newBackend func(t *testing.T) session.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b session.Backend)
	}{
		{"Ping", testPing},
		{"RecordRoundTrip", testRecordRoundTrip},
		{"RecordMissing", testRecordMissing},
		{"RecordReplaceAndDelete", testRecordReplaceAndDelete},
		{"RecordKeysDistinct", testRecordKeysDistinct},
		{"GetDelete", testGetDelete},
		{"GetDeleteRace", testGetDeleteRace},
		{"RecordExpiry", testRecordExpiry},
		{"CancelledContext", testCancelledContext},
		{"BlobRoundTrip", testBlobRoundTrip},
		{"BlobLimit", testBlobLimit},
		{"BlobTooLargeLeavesNothing", testBlobTooLarge},
		{"BlobBodyErrorLeavesNothing", testBlobBodyError},
		{"BlobInvisibleUntilComplete", testBlobInvisibleUntilComplete},
		{"TakeBlobOnce", testTakeBlobOnce},
		{"TakeBlobRace", testTakeBlobRace},
		{"RestoreThenTake", testRestoreThenTake},
		{"RestoreMissing", testRestoreMissing},
		{"DeleteBlob", testDeleteBlob},
		{"BlobExpiry", testBlobExpiry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// key returns a distinct key per call site, so a backend shared by mistake
// between subtests does not hide a bug.
func key(t *testing.T, name string) string {
	return "sessiontest:" + strings.ReplaceAll(t.Name(), "/", ".") + ":" + name
}

func testPing(t *testing.T, b session.Backend) {
	if err := b.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testRecordRoundTrip(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	values := map[string][]byte{
		"empty":  {},
		"text":   []byte("hello"),
		"binary": {0, 1, 2, 0xff, 0xfe, 0, '\n', '\r'},
		"large":  bytes.Repeat([]byte("x"), 100<<10),
	}
	for name, v := range values {
		k := key(t, name)
		if err := b.Set(ctx, k, v, ttl); err != nil {
			t.Fatalf("Set %s: %v", name, err)
		}
		got, err := b.Get(ctx, k)
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("Get %s: got %d bytes, want %d bytes equal to what was set", name, len(got), len(v))
		}
	}
	// The longest key a backend must accept.
	long := key(t, "")
	long += strings.Repeat("k", session.MaxKeyLen-len(long))
	if err := b.Set(ctx, long, []byte("v"), ttl); err != nil {
		t.Fatalf("Set with a %d-byte key: %v", len(long), err)
	}
	if got, err := b.Get(ctx, long); err != nil || string(got) != "v" {
		t.Fatalf("Get with a %d-byte key = %q, %v", len(long), got, err)
	}
}

func testRecordMissing(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	if _, err := b.Get(ctx, key(t, "missing")); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, key(t, "missing")); err != nil {
		t.Fatalf("Delete missing: %v, want nil", err)
	}
}

func testRecordReplaceAndDelete(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "r")
	mustSet(t, b, k, "one")
	mustSet(t, b, k, "two")
	if got, err := b.Get(ctx, k); err != nil || string(got) != "two" {
		t.Fatalf("Get after replace = %q, %v; want \"two\"", got, err)
	}
	if err := b.Delete(ctx, k); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Get(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
	}
}

func testRecordKeysDistinct(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	// Keys that are prefixes of each other must not share storage.
	ks := []string{key(t, "a"), key(t, "a:b"), key(t, "a:b:c"), key(t, "ab")}
	for _, k := range ks {
		mustSet(t, b, k, "value of "+k)
	}
	if err := b.Delete(ctx, ks[0]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, k := range ks[1:] {
		if got, err := b.Get(ctx, k); err != nil || string(got) != "value of "+k {
			t.Fatalf("Get %s = %q, %v; another key's Set or Delete touched it", k, got, err)
		}
	}
}

func testGetDelete(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "once")
	mustSet(t, b, k, "state")
	got, err := b.GetDelete(ctx, k)
	if err != nil || string(got) != "state" {
		t.Fatalf("GetDelete = %q, %v; want \"state\"", got, err)
	}
	if _, err := b.GetDelete(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("second GetDelete: err = %v, want ErrNotFound", err)
	}
	if _, err := b.Get(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after GetDelete: err = %v, want ErrNotFound", err)
	}
}

func testGetDeleteRace(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	const rounds, racers = 5, 50
	for round := range rounds {
		k := key(t, fmt.Sprint(round))
		mustSet(t, b, k, "v")
		var wins, misses int
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range racers {
			wg.Go(func() {
				<-start
				v, err := b.GetDelete(ctx, k)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && string(v) == "v":
					wins++
				case errors.Is(err, session.ErrNotFound):
					misses++
				default:
					t.Errorf("GetDelete = %q, %v", v, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins != 1 || misses != racers-1 {
			t.Fatalf("round %d: %d callers got the record and %d ErrNotFound; want exactly 1 and %d", round, wins, misses, racers-1)
		}
	}
}

func testRecordExpiry(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k, keep := key(t, "short"), key(t, "long")
	start := time.Now()
	if err := b.Set(ctx, k, []byte("v"), expiryTTL); err != nil {
		t.Fatalf("Set: %v", err)
	}
	mustSet(t, b, keep, "v")
	if _, err := b.Get(ctx, k); err != nil && time.Since(start) < expiryTTL {
		t.Fatalf("Get before its ttl: %v", err)
	}
	waitGone(t, "record", func() error { _, err := b.Get(ctx, k); return err })
	if _, err := b.GetDelete(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("GetDelete of an expired record: err = %v, want ErrNotFound", err)
	}
	if _, err := b.Get(ctx, keep); err != nil {
		t.Fatalf("a record with a long ttl expired with the short one: %v", err)
	}
}

// waitGone polls get until it returns ErrNotFound, for at most expiryWait.
func waitGone(t *testing.T, what string, get func() error) {
	t.Helper()
	deadline := time.Now().Add(expiryWait)
	for {
		err := get()
		if errors.Is(err, session.ErrNotFound) {
			return
		}
		if err != nil && !errors.Is(err, session.ErrTaken) {
			t.Fatalf("waiting for the %s to expire: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there %s after its ttl of %s", what, expiryWait, expiryTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testCancelledContext(t *testing.T, b session.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Get(ctx, key(t, "k")); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get with a cancelled context: err = %v, want a context error", err)
	}
	if _, err := b.PutBlob(ctx, key(t, "b"), nil, strings.NewReader("x"), 10, ttl); err == nil {
		t.Fatal("PutBlob with a cancelled context succeeded")
	}
	if _, _, err := b.TakeBlob(context.Background(), key(t, "b")); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("TakeBlob after a cancelled PutBlob: err = %v, want ErrNotFound", err)
	}
}

// body returns n deterministic pseudo-random bytes, as a reader that hands
// them out in uneven pieces, and their SHA-256.
func body(n int64, seed uint64) (io.Reader, [32]byte) {
	src := func() io.Reader {
		return &unevenReader{r: io.LimitReader(rand.NewChaCha8(seedBytes(seed)), n), seed: seed}
	}
	h := sha256.New()
	if _, err := io.Copy(h, src()); err != nil {
		panic(err) // a ChaCha8 stream cannot fail
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return src(), sum
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

// unevenReader returns at most a varying, odd number of bytes per Read, so
// backends cannot rely on reads that fill their buffer.
type unevenReader struct {
	r    io.Reader
	seed uint64
	i    int
}

func (u *unevenReader) Read(p []byte) (int, error) {
	u.i++
	limit := []int{1, 7, 4093, 65537, 100_000}[u.i%5]
	if len(p) > limit {
		p = p[:limit]
	}
	return u.r.Read(p)
}

func testBlobRoundTrip(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	sizes := []int64{0, 1, 2, chunk - 1, chunk, chunk + 1, 2 * chunk, 16*chunk + 1, 5 << 20}
	for i, size := range sizes {
		k := key(t, fmt.Sprint(size))
		meta := []byte(fmt.Sprintf("meta for %d bytes \x00\xff", size))
		r, want := body(size, uint64(i))
		n, err := b.PutBlob(ctx, k, meta, r, 5<<20, ttl)
		if err != nil {
			t.Fatalf("PutBlob %d bytes: %v", size, err)
		}
		if n != size {
			t.Fatalf("PutBlob %d bytes returned %d", size, n)
		}
		gotMeta, rc, err := b.TakeBlob(ctx, k)
		if err != nil {
			t.Fatalf("TakeBlob %d bytes: %v", size, err)
		}
		if !bytes.Equal(gotMeta, meta) {
			t.Fatalf("TakeBlob %d bytes: meta %q, want %q", size, gotMeta, meta)
		}
		h := sha256.New()
		got, err := io.Copy(h, rc)
		if err != nil {
			t.Fatalf("reading the %d-byte body: %v", size, err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got != size || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("body of %d bytes came back as %d bytes, equal=%v", size, got, bytes.Equal(h.Sum(nil), want[:]))
		}
		if err := b.DeleteBlob(ctx, k); err != nil {
			t.Fatalf("DeleteBlob: %v", err)
		}
	}
}

func testBlobLimit(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	for _, size := range []int64{0, 10, chunk, chunk + 1} {
		k := key(t, fmt.Sprint(size))
		r, _ := body(size, 1)
		if n, err := b.PutBlob(ctx, k, nil, r, size, ttl); err != nil || n != size {
			t.Fatalf("PutBlob of exactly the limit (%d bytes) = %d, %v", size, n, err)
		}
		if _, rc, err := b.TakeBlob(ctx, k); err != nil {
			t.Fatalf("TakeBlob: %v", err)
		} else {
			_ = rc.Close()
		}
	}
}

func testBlobTooLarge(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	for _, tc := range []struct{ size, limit int64 }{{1, 0}, {11, 10}, {chunk + 1, chunk}, {3 << 20, 1 << 20}} {
		k := key(t, fmt.Sprint(tc.size))
		r, _ := body(tc.size, 2)
		n, err := b.PutBlob(ctx, k, []byte("meta"), r, tc.limit, ttl)
		if !errors.Is(err, session.ErrTooLarge) {
			t.Fatalf("PutBlob %d bytes with limit %d = %d, %v; want ErrTooLarge", tc.size, tc.limit, n, err)
		}
		if _, _, err := b.TakeBlob(ctx, k); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("TakeBlob after ErrTooLarge: err = %v, want ErrNotFound", err)
		}
	}
	// The reader is not drained to the end: the backend stops soon after
	// the limit.
	cr := &countingReader{r: io.LimitReader(rand.NewChaCha8([32]byte{}), 64<<20)}
	if _, err := b.PutBlob(ctx, key(t, "endless"), nil, cr, 1<<20, ttl); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("PutBlob of 64 MiB with a 1 MiB limit: err = %v, want ErrTooLarge", err)
	}
	if cr.n > 4<<20 {
		t.Fatalf("PutBlob read %d bytes of a body limited to 1 MiB; it should stop near the limit", cr.n)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// failingReader returns n bytes and then err.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	m := min(len(p), f.n)
	clear(p[:m])
	f.n -= m
	return m, nil
}

func testBlobBodyError(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	boom := errors.New("client went away")
	for _, n := range []int{0, 100, 3 * chunk} {
		k := key(t, fmt.Sprint(n))
		_, err := b.PutBlob(ctx, k, nil, &failingReader{n: n, err: boom}, 1<<20, ttl)
		if !errors.Is(err, boom) {
			t.Fatalf("PutBlob with a body failing after %d bytes: err = %v, want the body's error", n, err)
		}
		if _, _, err := b.TakeBlob(ctx, k); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("TakeBlob after a failed PutBlob: err = %v, want ErrNotFound", err)
		}
	}
}

func testBlobInvisibleUntilComplete(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "slow")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := b.PutBlob(ctx, k, []byte("m"), pr, 1<<20, ttl)
		done <- err
	}()
	// Once the writer has handed over 3 chunks, PutBlob is mid-body.
	if _, err := pw.Write(make([]byte, 3*chunk)); err != nil {
		t.Fatalf("writing the first part: %v", err)
	}
	if _, _, err := b.TakeBlob(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("TakeBlob of a blob still being written: err = %v, want ErrNotFound", err)
	}
	if _, err := pw.Write(make([]byte, 10)); err != nil {
		t.Fatalf("writing the rest: %v", err)
	}
	_ = pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	_, rc, err := b.TakeBlob(ctx, k)
	if err != nil {
		t.Fatalf("TakeBlob after completion: %v", err)
	}
	defer rc.Close()
	if n, err := io.Copy(io.Discard, rc); err != nil || n != 3*chunk+10 {
		t.Fatalf("body = %d bytes, %v; want %d", n, err, 3*chunk+10)
	}
}

func putSmall(t *testing.T, b session.Backend, k, content string) {
	t.Helper()
	if _, err := b.PutBlob(ctxFor(t), k, []byte("meta:"+content), strings.NewReader(content), 1<<20, ttl); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
}

func takeAll(t *testing.T, b session.Backend, k string) (meta, body string) {
	t.Helper()
	m, rc, err := b.TakeBlob(ctxFor(t), k)
	if err != nil {
		t.Fatalf("TakeBlob: %v", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(m), string(data)
}

func testTakeBlobOnce(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "b")
	putSmall(t, b, k, "submission")
	if m, body := takeAll(t, b, k); m != "meta:submission" || body != "submission" {
		t.Fatalf("TakeBlob = %q, %q", m, body)
	}
	if _, _, err := b.TakeBlob(ctx, k); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("second TakeBlob: err = %v, want ErrTaken", err)
	}
	if _, _, err := b.TakeBlob(ctx, key(t, "missing")); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("TakeBlob missing: err = %v, want ErrNotFound", err)
	}
}

func testTakeBlobRace(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	const rounds, racers = 3, 50
	for round := range rounds {
		k := key(t, fmt.Sprint(round))
		putSmall(t, b, k, "pay once")
		var wins, taken int
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range racers {
			wg.Go(func() {
				<-start
				meta, rc, err := b.TakeBlob(ctx, k)
				var data []byte
				if err == nil {
					data, err = io.ReadAll(rc)
					_ = rc.Close()
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && string(meta) == "meta:pay once" && string(data) == "pay once":
					wins++
				case errors.Is(err, session.ErrTaken):
					taken++
				default:
					t.Errorf("TakeBlob = %q, %q, %v", meta, data, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins != 1 || taken != racers-1 {
			t.Fatalf("round %d: %d takers won, %d got ErrTaken; want exactly 1 and %d", round, wins, taken, racers-1)
		}
	}
}

func testRestoreThenTake(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "b")
	putSmall(t, b, k, "retry me")
	takeAll(t, b, k)
	if err := b.RestoreBlob(ctx, k); err != nil {
		t.Fatalf("RestoreBlob: %v", err)
	}
	if m, body := takeAll(t, b, k); m != "meta:retry me" || body != "retry me" {
		t.Fatalf("TakeBlob after restore = %q, %q", m, body)
	}
	if _, _, err := b.TakeBlob(ctx, k); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("TakeBlob after the second take: err = %v, want ErrTaken", err)
	}
	// Restoring a blob that is not taken leaves it takeable exactly once.
	k2 := key(t, "pending")
	putSmall(t, b, k2, "x")
	if err := b.RestoreBlob(ctx, k2); err != nil {
		t.Fatalf("RestoreBlob of a pending blob: %v", err)
	}
	takeAll(t, b, k2)
	if _, _, err := b.TakeBlob(ctx, k2); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("second TakeBlob: err = %v, want ErrTaken", err)
	}
}

func testRestoreMissing(t *testing.T, b session.Backend) {
	if err := b.RestoreBlob(ctxFor(t), key(t, "missing")); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("RestoreBlob missing: err = %v, want ErrNotFound", err)
	}
}

func testDeleteBlob(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	if err := b.DeleteBlob(ctx, key(t, "missing")); err != nil {
		t.Fatalf("DeleteBlob missing: %v, want nil", err)
	}
	pending, taken := key(t, "pending"), key(t, "taken")
	putSmall(t, b, pending, "a")
	putSmall(t, b, taken, "b")
	takeAll(t, b, taken)
	for _, k := range []string{pending, taken} {
		if err := b.DeleteBlob(ctx, k); err != nil {
			t.Fatalf("DeleteBlob: %v", err)
		}
		if _, _, err := b.TakeBlob(ctx, k); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("TakeBlob after DeleteBlob: err = %v, want ErrNotFound", err)
		}
		if err := b.RestoreBlob(ctx, k); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("RestoreBlob after DeleteBlob: err = %v, want ErrNotFound", err)
		}
	}
	// A new blob under a deleted key is a new blob.
	putSmall(t, b, taken, "again")
	if _, body := takeAll(t, b, taken); body != "again" {
		t.Fatalf("body after reuse of the key = %q", body)
	}
}

func testBlobExpiry(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k, keep := key(t, "short"), key(t, "long")
	if _, err := b.PutBlob(ctx, k, []byte("m"), strings.NewReader("body"), 100, expiryTTL); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	// The blob's ttl starts at some point during PutBlob, so it must be
	// gone once ttl has passed since PutBlob returned (plus a little slack
	// for backends that keep time in milliseconds).
	returned := time.Now()
	putSmall(t, b, keep, "stays")
	waitGone(t, "blob", func() error {
		_, rc, err := b.TakeBlob(ctx, k)
		if err == nil {
			_ = rc.Close()
			if time.Since(returned) < expiryTTL+50*time.Millisecond {
				// Taken before its ttl: give it back and wait on.
				return b.RestoreBlob(ctx, k)
			}
			return errors.New("an expired blob could be taken")
		}
		return err
	})
	if err := b.RestoreBlob(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("RestoreBlob of an expired blob: err = %v, want ErrNotFound", err)
	}
	if _, body := takeAll(t, b, keep); body != "stays" {
		t.Fatalf("blob with a long ttl: body %q", body)
	}
}

func mustSet(t *testing.T, b session.Backend, k, v string) {
	t.Helper()
	if err := b.Set(ctxFor(t), k, []byte(v), ttl); err != nil {
		t.Fatalf("Set: %v", err)
	}
}
