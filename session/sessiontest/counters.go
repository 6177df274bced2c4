package sessiontest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/postern/postern/session"
)

func counters(t *testing.T, b session.Backend) session.Counters {
	t.Helper()
	c, ok := b.(session.Counters)
	if !ok {
		t.Fatal("the backend keeps no shared counters (session.Counters)")
	}
	return c
}

// testCounters: slots sum, a limit refuses without changing anything, old
// slots are forgotten, a release outside the window changes nothing, and a
// deleted counter starts over. Counters and records are apart.
func testCounters(t *testing.T, b session.Backend) {
	ctx := context.Background()
	c := counters(t, b)
	add := func(slot, oldest, delta, limit int64) (int64, bool) {
		t.Helper()
		n, ok, err := c.AddCounter(ctx, "lim:c", slot, oldest, delta, limit, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return n, ok
	}
	if n, ok := add(10, 1, 3, 5); n != 3 || !ok {
		t.Fatalf("first add: %d %v, want 3 true", n, ok)
	}
	if n, ok := add(11, 2, 2, 5); n != 5 || !ok {
		t.Fatalf("second add: %d %v, want 5 true", n, ok)
	}
	if n, ok := add(11, 2, 1, 5); n != 5 || ok {
		t.Fatalf("add over the limit: %d %v, want 5 false", n, ok)
	}
	if n, ok := add(11, 2, 0, -1); n != 5 || !ok {
		t.Fatalf("read: %d %v, want 5 true (the refused add changed nothing)", n, ok)
	}
	if n, _ := add(12, 11, 0, -1); n != 2 {
		t.Fatalf("read with slot 10 out of the window: %d, want 2", n)
	}
	if n, _ := add(10, 11, -3, -1); n != 2 {
		t.Fatalf("a release into a forgotten slot: %d, want still 2", n)
	}
	if n, ok := add(12, 11, -2, 0); n != 0 || !ok {
		t.Fatalf("release: %d %v, want 0 true (a release is never refused)", n, ok)
	}
	if _, err := b.Get(ctx, "lim:c"); err == nil {
		t.Fatal("a counter is visible as a record")
	}
	add(12, 11, 4, -1)
	if err := c.DeleteCounter(ctx, "lim:c"); err != nil {
		t.Fatal(err)
	}
	if n, _ := add(12, 11, 0, -1); n != 0 {
		t.Fatalf("after delete: %d, want 0", n)
	}
}

// testCountersRace: of 40 concurrent adds of 1 under a limit of 15, exactly
// 15 are counted: the check and the add are one step.
func testCountersRace(t *testing.T, b session.Backend) {
	c := counters(t, b)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			_, added, err := c.AddCounter(context.Background(), "lim:race", 7, 0, 1, 15, ttl)
			if err != nil {
				t.Error(err)
			}
			if added {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 15 {
		t.Fatalf("%d concurrent adds counted, want exactly 15", ok.Load())
	}
}
