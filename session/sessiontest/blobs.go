package sessiontest

import (
	"bytes"
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
	// Taking would extend its life (TakenTTL), so look only once its ttl
	// has passed.
	time.Sleep(time.Until(returned.Add(expiryTTL + 50*time.Millisecond)))
	waitGone(t, "blob", func() error {
		_, rc, err := b.TakeBlob(ctx, k)
		if err == nil {
			_ = rc.Close()
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

// testTakenBlobOutlivesTTL: a blob taken just before its ttl ends stays
// readable to the end, and can still be restored (session.TakenTTL).
func testTakenBlobOutlivesTTL(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "late")
	body := strings.Repeat("late taker ", 20000) // several chunks
	if _, err := b.PutBlob(ctx, k, []byte("m"), strings.NewReader(body), int64(len(body)), expiryTTL); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	_, rc, err := b.TakeBlob(ctx, k)
	if err != nil {
		t.Fatalf("TakeBlob: %v", err)
	}
	defer rc.Close()
	time.Sleep(expiryTTL + 200*time.Millisecond)
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != body {
		t.Fatalf("reading a blob taken before its ttl ended, after it: %d of %d bytes, %v", len(got), len(body), err)
	}
	if err := b.RestoreBlob(ctx, k); err != nil {
		t.Fatalf("RestoreBlob after the original ttl: %v", err)
	}
	if err := b.DeleteBlob(ctx, k); err != nil {
		t.Fatal(err)
	}
}
