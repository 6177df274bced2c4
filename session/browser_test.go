package session_test

import (
	"context"
	"testing"
	"time"
)

func TestRetireBrowser(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := context.Background()
	owns := func(browser, owner string) bool {
		t.Helper()
		ok, err := st.Owns(ctx, browser, owner)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !owns("x", "x") {
		t.Fatal("a browser id that was never retired does not own its own stashes")
	}
	got, err := st.RetireBrowser(ctx, "x", "y", "local:alice", time.Minute)
	if err != nil || got != "y" {
		t.Fatalf("RetireBrowser = %q, %v; want y", got, err)
	}
	if owns("x", "x") {
		t.Error("a retired browser id (a copy of the old cookie) still owns its stashes")
	}
	if !owns("y", "x") || !owns("y", "y") {
		t.Error("the successor does not own what the old id owned, or its own")
	}
	// Another person logging in with a copy of the old cookie gets nothing.
	if got, err := st.RetireBrowser(ctx, "x", "z", "local:mallory", time.Minute); err != nil || got != "" {
		t.Fatalf("RetireBrowser by another person = %q, %v; want \"\"", got, err)
	}
	if owns("z", "x") {
		t.Error("another person's login took over the retired id")
	}
	// The same person again (a double click) adopts the recorded successor.
	if got, err := st.RetireBrowser(ctx, "x", "y2", "local:alice", time.Minute); err != nil || got != "y" {
		t.Fatalf("RetireBrowser by the same person again = %q, %v; want y", got, err)
	}
	// A second login carries everything along.
	if got, err := st.RetireBrowser(ctx, "y", "w", "local:alice", time.Minute); err != nil || got != "w" {
		t.Fatalf("second RetireBrowser = %q, %v; want w", got, err)
	}
	if !owns("w", "x") || !owns("w", "y") || owns("y", "y") {
		t.Error("after a second login the newest id does not own both earlier ids' stashes, or the middle one still does")
	}
}

func TestLease(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := context.Background()
	l, ok, err := st.AcquireLease(ctx, "refresh:s", time.Minute)
	if err != nil || !ok {
		t.Fatalf("AcquireLease = %v, %v", ok, err)
	}
	if _, ok, err := st.AcquireLease(ctx, "refresh:s", time.Minute); err != nil || ok {
		t.Fatalf("second AcquireLease = %v, %v; want not acquired", ok, err)
	}
	if held, err := st.Held(ctx, "refresh:s"); err != nil || !held {
		t.Fatalf("Held = %v, %v", held, err)
	}
	if err := st.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.AcquireLease(ctx, "refresh:s", time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLease after Release = %v, %v", ok, err)
	}
	// Releasing a lease that was lost and taken by another leaves theirs.
	if err := st.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	if held, err := st.Held(ctx, "refresh:s"); err != nil || !held {
		t.Fatalf("a stale Release removed another holder's lease: Held = %v, %v", held, err)
	}
}
