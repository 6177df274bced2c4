package redisstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
)

const chunk = redisstore.DefaultChunkSize

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

// allBytes is meta that holds every byte value, to show nothing is mangled.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func takeAll(t *testing.T, b session.Backend, key string) ([]byte, []byte) {
	t.Helper()
	meta, body, err := b.TakeBlob(context.Background(), key)
	if err != nil {
		t.Fatalf("TakeBlob: %v", err)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if err := body.Close(); err != nil {
		t.Fatal(err)
	}
	return meta, data
}

func TestBlobRoundTrip(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt)
	raw := rawClient(t, tt)
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 4 * chunk, 4*chunk + 1, 9*chunk - 1, 5 << 20}
	for i, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("blob-%d", i)
			body := randomBytes(size, uint64(i))
			meta := append(allBytes(), byte(i))
			n, err := b.PutBlob(ctx, key, meta, bytes.NewReader(body), 5<<20, time.Minute)
			if err != nil || n != int64(size) {
				t.Fatalf("PutBlob: %d, %v; want %d", n, err, size)
			}
			gotMeta, gotBody := takeAll(t, b, key)
			if !bytes.Equal(gotMeta, meta) {
				t.Fatalf("meta differs: %x", gotMeta)
			}
			if !bytes.Equal(gotBody, body) {
				t.Fatalf("body differs: %d bytes back, want %d (sha %x vs %x)", len(gotBody), size, sha256.Sum256(gotBody), sha256.Sum256(body))
			}
			if err := b.DeleteBlob(ctx, key); err != nil {
				t.Fatal(err)
			}
			if keys := keysWithPrefix(t, raw, tt.prefix); len(keys) != 0 {
				t.Fatalf("keys left after DeleteBlob: %v", keys)
			}
		})
	}
}

// TestBlobReaderContract runs the standard library's reader checks (small
// reads, ReadAt-free behaviour, EOF handling) over a multi-chunk body.
func TestBlobReaderContract(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, redisForTest(t), redisstore.WithChunkSize(1000))
	body := randomBytes(10_500, 7)
	if _, err := b.PutBlob(ctx, "r", nil, bytes.NewReader(body), 1<<20, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, rc, err := b.TakeBlob(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := iotest.TestReader(rc, body); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

// countingReader counts how much of the body PutBlob consumed.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestBlobTooLargeLeavesNothing(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt)
	raw := rawClient(t, tt)
	cases := []struct {
		name        string
		size, limit int64
	}{
		{"one byte over", 1001, 1000},
		{"over at a chunk boundary", chunk + 1, chunk},
		{"many batches over", 3 << 20, 1<<20 + 3},
		{"zero limit", 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := &countingReader{r: bytes.NewReader(randomBytes(int(c.size), 1))}
			_, err := b.PutBlob(ctx, "big", []byte("m"), in, c.limit, time.Minute)
			if !errors.Is(err, session.ErrTooLarge) {
				t.Fatalf("PutBlob of %d bytes with limit %d: %v, want ErrTooLarge", c.size, c.limit, err)
			}
			if in.n > c.limit+1 {
				t.Fatalf("PutBlob read %d bytes, want at most limit+1 = %d", in.n, c.limit+1)
			}
			if keys := keysWithPrefix(t, raw, tt.prefix); len(keys) != 0 {
				t.Fatalf("keys left after ErrTooLarge: %v", keys)
			}
			if _, _, err := b.TakeBlob(ctx, "big"); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("TakeBlob after ErrTooLarge: %v, want ErrNotFound", err)
			}
		})
	}
	// Exactly at the limit is fine.
	if n, err := b.PutBlob(ctx, "fits", nil, bytes.NewReader(make([]byte, 2*chunk)), 2*chunk, time.Minute); err != nil || n != 2*chunk {
		t.Fatalf("PutBlob at the limit: %d, %v", n, err)
	}
}

func TestBlobBodyReadErrorLeavesNothing(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt)
	raw := rawClient(t, tt)
	boom := errors.New("client went away")
	body := io.MultiReader(bytes.NewReader(make([]byte, 6*chunk)), iotest.ErrReader(boom))
	if _, err := b.PutBlob(ctx, "cut", nil, body, 1<<30, time.Minute); !errors.Is(err, boom) {
		t.Fatalf("PutBlob: %v, want the body's error", err)
	}
	if keys := keysWithPrefix(t, raw, tt.prefix); len(keys) != 0 {
		t.Fatalf("keys left after a failed body: %v", keys)
	}
}

// An incomplete blob is never visible: while its body is still arriving,
// TakeBlob finds nothing.
func TestBlobInvisibleUntilComplete(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt)
	raw := rawClient(t, tt)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := b.PutBlob(ctx, "slow", []byte("m"), pr, 1<<30, time.Minute)
		done <- err
	}()
	// Write enough for two pipelined batches to reach Redis.
	if _, err := pw.Write(make([]byte, 9*chunk)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(keysWithPrefix(t, raw, tt.prefix)) < 8 {
		if time.Now().After(deadline) {
			t.Fatal("chunks did not reach Redis while the body was open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := b.TakeBlob(ctx, "slow"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("TakeBlob of an incomplete blob: %v, want ErrNotFound", err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, data := takeAll(t, b, "slow"); len(data) != 9*chunk {
		t.Fatalf("body of %d bytes, want %d", len(data), 9*chunk)
	}
}

func TestBlobTakeRestoreDelete(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt)
	raw := rawClient(t, tt)
	body := randomBytes(3*chunk+5, 3)
	if _, err := b.PutBlob(ctx, "s", []byte("meta"), bytes.NewReader(body), 1<<20, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, got := takeAll(t, b, "s"); !bytes.Equal(got, body) {
		t.Fatal("first take: body differs")
	}
	if _, _, err := b.TakeBlob(ctx, "s"); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("second take: %v, want ErrTaken", err)
	}
	if err := b.RestoreBlob(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	meta, got := takeAll(t, b, "s")
	if string(meta) != "meta" || !bytes.Equal(got, body) {
		t.Fatal("take after restore: meta or body differs")
	}
	if _, _, err := b.TakeBlob(ctx, "s"); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("take after the restored take: %v, want ErrTaken", err)
	}
	if err := b.DeleteBlob(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if keys := keysWithPrefix(t, raw, tt.prefix); len(keys) != 0 {
		t.Fatalf("keys left after DeleteBlob: %v", keys)
	}
	if _, _, err := b.TakeBlob(ctx, "s"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("take after delete: %v, want ErrNotFound", err)
	}
	if err := b.RestoreBlob(ctx, "s"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("restore after delete: %v, want ErrNotFound", err)
	}
	if err := b.DeleteBlob(ctx, "s"); err != nil {
		t.Fatalf("delete of a missing blob: %v", err)
	}

	// An untaken blob is deleted too, every chunk of it.
	if _, err := b.PutBlob(ctx, "u", nil, bytes.NewReader(body), 1<<20, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteBlob(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if keys := keysWithPrefix(t, raw, tt.prefix); len(keys) != 0 {
		t.Fatalf("keys left after DeleteBlob of an untaken blob: %v", keys)
	}
}

// A blob written again under the same key replaces the old one entirely.
func TestBlobReplace(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt)
	raw := rawClient(t, tt)
	if _, err := b.PutBlob(ctx, "k", []byte("old"), bytes.NewReader(randomBytes(5*chunk, 1)), 1<<20, time.Minute); err != nil {
		t.Fatal(err)
	}
	newBody := randomBytes(chunk+1, 2)
	if _, err := b.PutBlob(ctx, "k", []byte("new"), bytes.NewReader(newBody), 1<<20, time.Minute); err != nil {
		t.Fatal(err)
	}
	if keys := keysWithPrefix(t, raw, tt.prefix); len(keys) != 3 {
		t.Fatalf("keys after replacing a 5-chunk blob by a 2-chunk one: %v, want meta and 2 chunks", keys)
	}
	meta, got := takeAll(t, b, "k")
	if string(meta) != "new" || !bytes.Equal(got, newBody) {
		t.Fatal("replaced blob: meta or body is not the new one")
	}
}

// takeRace runs one TakeBlob per backend in bs (several goroutines may
// share one) all at once and returns how many won; the winner's body must be
// intact and the losers must get ErrTaken.
func takeRace(t *testing.T, bs []session.Backend, key string, body []byte) int32 {
	t.Helper()
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, rc, err := b.TakeBlob(context.Background(), key)
			if errors.Is(err, session.ErrTaken) {
				return
			}
			if err != nil {
				t.Errorf("TakeBlob: %v", err)
				return
			}
			wins.Add(1)
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("winner's body: %d bytes, %v", len(got), err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins.Load()
}

func TestBlobTakeExactlyOnce(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	// Two Stores with their own connections: two gateway replicas.
	replicas := []session.Backend{openStore(t, tt), openStore(t, tt)}
	body := randomBytes(2*chunk+3, 4)
	for round := 0; round < 10; round++ {
		key := fmt.Sprintf("race-%d", round)
		if _, err := replicas[0].PutBlob(ctx, key, nil, bytes.NewReader(body), 1<<20, time.Minute); err != nil {
			t.Fatal(err)
		}
		var takers []session.Backend
		for i := 0; i < 50; i++ {
			takers = append(takers, replicas[i%2])
		}
		if n := takeRace(t, takers, key, body); n != 1 {
			t.Fatalf("round %d: %d of 50 takers across 2 replicas won, want exactly 1", round, n)
		}
		// After a restore, again exactly one.
		if err := replicas[1].RestoreBlob(ctx, key); err != nil {
			t.Fatal(err)
		}
		if n := takeRace(t, takers, key, body); n != 1 {
			t.Fatalf("round %d after restore: %d winners, want 1", round, n)
		}
	}
}

// The store keeps exactly the bytes it is given: the Sealer's ciphertext
// goes in and comes out untouched, as Redis itself shows.
func TestValuesAreOpaqueBytes(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt, redisstore.WithChunkSize(100))
	raw := rawClient(t, tt)

	value := allBytes()
	if err := b.Set(ctx, "rec", value, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := raw.Get(ctx, tt.prefix+":r:rec").Bytes(); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("raw record: %x, %v", got, err)
	}

	// A key with the characters that matter to hash tags.
	const key = "a}b{c%d"
	body := randomBytes(250, 9)
	meta := allBytes()
	if _, err := b.PutBlob(ctx, key, meta, bytes.NewReader(body), 1000, time.Minute); err != nil {
		t.Fatal(err)
	}
	base := tt.prefix + ":b:{a%7Db%7Bc%25d}"
	if got, err := raw.HGet(ctx, base+":m", "m").Bytes(); err != nil || !bytes.Equal(got, meta) {
		t.Fatalf("raw meta: %x, %v", got, err)
	}
	chunks, err := raw.Keys(ctx, base+":c:*").Result()
	if err != nil || len(chunks) != 3 {
		t.Fatalf("raw chunk keys: %v, %v; want 3", chunks, err)
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i][len(chunks[i])-1] < chunks[j][len(chunks[j])-1] })
	var stored []byte
	for _, k := range chunks {
		if !strings.HasPrefix(k, base+":c:") {
			t.Fatalf("chunk key %q outside the blob's hash tag", k)
		}
		v, err := raw.Get(ctx, k).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, v...)
	}
	if !bytes.Equal(stored, body) {
		t.Fatal("raw chunks are not the body as given")
	}
	if _, got := takeAll(t, b, key); !bytes.Equal(got, body) {
		t.Fatal("body differs")
	}
}
