package redisstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestBlobMemoryIsBounded puts and takes a 64 MiB body and checks the heap
// never grows by more than 16 MiB: the body streams in chunks, it is never
// held whole.
func TestBlobMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB through Redis")
	}
	const size, maxGrowth = 64 << 20, 16 << 20
	ctx := context.Background()
	b := openStore(t, redisForTest(t))

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	var (
		mu   sync.Mutex
		peak uint64
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				mu.Lock()
				peak = max(peak, ms.HeapAlloc)
				mu.Unlock()
			}
		}
	}()

	in := sha256.New()
	body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), in)
	n, err := b.PutBlob(ctx, "huge", nil, body, size, time.Minute)
	if err != nil || n != size {
		t.Fatalf("PutBlob: %d, %v", n, err)
	}
	_, rc, err := b.TakeBlob(ctx, "huge")
	if err != nil {
		t.Fatal(err)
	}
	out := sha256.New()
	if m, err := io.Copy(out, rc); err != nil || m != size {
		t.Fatalf("read body: %d, %v", m, err)
	}
	rc.Close()
	close(stop)
	<-sampled
	if !bytes.Equal(in.Sum(nil), out.Sum(nil)) {
		t.Fatal("64 MiB body differs after the round trip")
	}
	if err := b.DeleteBlob(ctx, "huge"); err != nil {
		t.Fatal(err)
	}
	growth := int64(peak) - int64(base)
	t.Logf("peak heap growth for a 64 MiB put+take: %.1f MiB", float64(growth)/(1<<20))
	if growth > maxGrowth {
		t.Fatalf("heap grew by %d MiB for a 64 MiB blob, want under %d MiB", growth>>20, maxGrowth>>20)
	}
}

func BenchmarkPutTakeBlob1MiB(b *testing.B) {
	ctx := context.Background()
	st := openStore(b, redisForTest(b))
	body := randomBytes(1<<20, 1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("bench-%d", i)
		if _, err := st.PutBlob(ctx, key, []byte("meta"), bytes.NewReader(body), 2<<20, time.Minute); err != nil {
			b.Fatal(err)
		}
		_, rc, err := st.TakeBlob(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		if err := st.DeleteBlob(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
