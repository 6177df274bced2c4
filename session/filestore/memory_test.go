package filestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
)

const (
	bigBody = 64 << 20
	// heapBound is the most the heap may grow while a 64 MiB body goes
	// through a sealed put and take: a quarter of the body, so any code
	// that holds the body whole fails.
	heapBound = 16 << 20
)

// putTakeBig stashes a 64 MiB body through the sealed Store over a file
// backend and streams it back, checking it byte for byte.
func putTakeBig(tb testing.TB, st *session.Store, id string) {
	ctx := context.Background()
	src := io.LimitReader(rand.NewChaCha8([32]byte{1}), bigBody)
	hIn := sha256.New()
	n, err := st.PutStash(ctx, id, session.Stored{Method: "POST", Owner: "browser", Size: bigBody}, io.TeeReader(src, hIn), bigBody, time.Hour)
	if err != nil || n != bigBody {
		tb.Fatalf("PutStash = %d, %v", n, err)
	}
	token := session.NewID()
	_, rc, _, err := st.Lease(ctx, id, "browser", token, session.MaxLease)
	if err != nil {
		tb.Fatalf("Lease: %v", err)
	}
	hOut := sha256.New()
	got, err := io.Copy(hOut, rc)
	_ = rc.Close()
	if err != nil || got != bigBody || !bytes.Equal(hIn.Sum(nil), hOut.Sum(nil)) {
		tb.Fatalf("read back %d bytes, %v, equal=%v", got, err, bytes.Equal(hIn.Sum(nil), hOut.Sum(nil)))
	}
	if err := st.Settle(ctx, id, token, session.OutcomeDiscarded); err != nil {
		tb.Fatal(err)
	}
}

func newBigStore(tb testing.TB) *session.Store {
	b, err := filestore.Open(filepath.Join(tb.TempDir(), "postern.db"), filestore.WithSweepInterval(0))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	s, err := session.NewSealer([][]byte{bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		tb.Fatal(err)
	}
	return session.NewStore(b, s)
}

// TestBigBodyPeakHeap bounds memory, not time: it samples the heap while a
// 64 MiB body is stashed and taken, and fails if it ever grew by 16 MiB.
func TestBigBodyPeakHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 64 MiB")
	}
	st := newBigStore(t)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	putTakeBig(t, st, "big")
	close(stop)
	wg.Wait()

	growth := int64(peak) - int64(base.HeapInuse)
	t.Logf("peak heap growth while putting and taking 64 MiB: %.1f MiB", float64(growth)/(1<<20))
	if growth >= heapBound {
		t.Fatalf("heap grew by %.1f MiB while putting and taking 64 MiB; want under %d MiB (is the body held whole?)",
			float64(growth)/(1<<20), heapBound>>20)
	}
}

// BenchmarkPutTake64MiB reports the heap growth across a sealed put and take
// of a 64 MiB body (heap-growth-MiB, which should stay far below 16) along
// with the usual time and allocations.
func BenchmarkPutTake64MiB(b *testing.B) {
	st := newBigStore(b)
	b.ReportAllocs()
	b.SetBytes(bigBody)
	var worst int64
	for i := 0; b.Loop(); i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		putTakeBig(b, st, session.NewID())
		runtime.ReadMemStats(&after)
		worst = max(worst, int64(after.HeapInuse)-int64(before.HeapInuse))
	}
	b.ReportMetric(float64(worst)/(1<<20), "heap-growth-MiB")
}
