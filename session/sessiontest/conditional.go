package sessiontest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/session"
)

func testSetNX(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "lease")
	cur, ok, err := b.SetNX(ctx, k, []byte("first"), ttl)
	if err != nil || !ok || string(cur) != "first" {
		t.Fatalf("SetNX on a free key = %q, %v, %v; want \"first\", true", cur, ok, err)
	}
	cur, ok, err = b.SetNX(ctx, k, []byte("second"), ttl)
	if err != nil || ok || string(cur) != "first" {
		t.Fatalf("SetNX on a held key = %q, %v, %v; want \"first\", false", cur, ok, err)
	}
	if removed, err := b.DeleteIf(ctx, k, []byte("second")); err != nil || removed {
		t.Fatalf("DeleteIf with another value = %v, %v; want false", removed, err)
	}
	if got, err := b.Get(ctx, k); err != nil || string(got) != "first" {
		t.Fatalf("Get after a foreign DeleteIf = %q, %v; want \"first\"", got, err)
	}
	if removed, err := b.DeleteIf(ctx, k, []byte("first")); err != nil || !removed {
		t.Fatalf("DeleteIf with the value = %v, %v; want true", removed, err)
	}
	if removed, err := b.DeleteIf(ctx, k, []byte("first")); err != nil || removed {
		t.Fatalf("DeleteIf of a missing key = %v, %v; want false, nil", removed, err)
	}
	if _, ok, err := b.SetNX(ctx, k, []byte("third"), ttl); err != nil || !ok {
		t.Fatalf("SetNX after DeleteIf = %v, %v; want stored", ok, err)
	}
}

func testSetNXExpiry(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "lease")
	if _, ok, err := b.SetNX(ctx, k, []byte("short"), expiryTTL); err != nil || !ok {
		t.Fatalf("SetNX = %v, %v", ok, err)
	}
	waitGone(t, "lease", func() error { _, err := b.Get(ctx, k); return err })
	cur, ok, err := b.SetNX(ctx, k, []byte("next"), ttl)
	if err != nil || !ok || string(cur) != "next" {
		t.Fatalf("SetNX after the lease lapsed = %q, %v, %v; want \"next\", true", cur, ok, err)
	}
}

func testSetNXRace(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	const rounds, racers = 5, 50
	for round := range rounds {
		k := key(t, fmt.Sprint(round))
		var mu sync.Mutex
		winners := map[string]bool{}
		seen := map[string]bool{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				mine := fmt.Sprint("racer-", i)
				cur, ok, err := b.SetNX(ctx, k, []byte(mine), ttl)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("SetNX: %v", err)
					return
				}
				seen[string(cur)] = true
				if ok {
					winners[mine] = true
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 || len(seen) != 1 {
			t.Fatalf("round %d: %d racers stored and they saw %d values; want exactly one of each", round, len(winners), len(seen))
		}
	}
}

func testSetNXInvalid(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	if _, _, err := b.SetNX(ctx, key(t, "k"), []byte("v"), 0); err == nil {
		t.Error("SetNX with a zero ttl succeeded")
	}
	if _, _, err := b.SetNX(ctx, "bad key", []byte("v"), time.Second); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("SetNX with an invalid key: err = %v, want an error", err)
	}
}
