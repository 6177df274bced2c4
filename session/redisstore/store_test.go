package redisstore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/session/sessiontest"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
)

// A conformance suite plugs in here once it exists:
//
//	func TestConformance(t *testing.T) { sessiontest.Run(t, newBackend) }

func TestRecords(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)

	if _, err := b.Get(ctx, "absent"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get of a missing key: got %v, want ErrNotFound", err)
	}
	if err := b.Set(ctx, "k1", []byte("one"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k1"); err != nil || string(got) != "one" {
		t.Fatalf("Get: %q, %v; want \"one\"", got, err)
	}
	if err := b.Set(ctx, "k1", []byte("two"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k1"); err != nil || string(got) != "two" {
		t.Fatalf("Get after replace: %q, %v; want \"two\"", got, err)
	}
	if err := b.Set(ctx, "empty", []byte{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "empty"); err != nil || len(got) != 0 {
		t.Fatalf("Get of an empty record: %q, %v", got, err)
	}
	if err := b.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k1"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "k1"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}

	if err := b.Set(ctx, "gd", []byte("once"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetDelete(ctx, "gd"); err != nil || string(got) != "once" {
		t.Fatalf("GetDelete: %q, %v", got, err)
	}
	if _, err := b.GetDelete(ctx, "gd"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("second GetDelete: %v, want ErrNotFound", err)
	}
}

func TestBadArguments(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	for _, key := range []string{"", "has space", "tab\t", string(make([]byte, 201)), "é"} {
		if err := b.Set(ctx, key, []byte("x"), time.Minute); err == nil {
			t.Errorf("Set accepted key %q", key)
		}
	}
	if err := b.Set(ctx, "k", []byte("x"), 0); err == nil {
		t.Error("Set accepted a zero ttl")
	}
	if _, err := b.PutBlob(ctx, "k", nil, bytes.NewReader(nil), 10, -time.Second); err == nil {
		t.Error("PutBlob accepted a negative ttl")
	}
}

func TestGetDeleteOnceUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	const rounds, workers = 20, 16
	for r := 0; r < rounds; r++ {
		if err := b.Set(ctx, "state", []byte("login"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := b.GetDelete(ctx, "state")
				switch {
				case err == nil && string(v) == "login":
					wins.Add(1)
				case errors.Is(err, session.ErrNotFound):
				default:
					t.Errorf("GetDelete: %q, %v", v, err)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d callers got the record, want exactly 1", r, n)
		}
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	b := openStore(t, tt, redisstore.WithChunkSize(16<<10))
	raw := rawClient(t, tt)
	const ttl = 200 * time.Millisecond
	if err := b.Set(ctx, "rec", []byte("v"), ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutBlob(ctx, "blob", []byte("m"), bytes.NewReader(make([]byte, 100<<10)), 1<<20, ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "rec"); err != nil {
		t.Fatalf("record gone before its ttl: %v", err)
	}
	// Every key, chunks included, carries a ttl no longer than asked.
	keys := keysWithPrefix(t, raw, tt.prefix)
	if len(keys) != 1+1+7 { // record, meta, ceil(100/16) chunks
		t.Fatalf("keys after Set and PutBlob: %d (%v), want 9", len(keys), keys)
	}
	for _, k := range keys {
		pttl, err := raw.PTTL(ctx, k).Result()
		if err != nil || pttl <= 0 || pttl > ttl {
			t.Fatalf("key %s has ttl %v (%v), want in (0, %v]", k, pttl, err, ttl)
		}
	}
	// Redis expires on its own clock: poll, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for len(keysWithPrefix(t, raw, tt.prefix)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("keys left 5s after a %s ttl: %v", ttl, keysWithPrefix(t, raw, tt.prefix))
		}
		time.Sleep(25 * time.Millisecond)
	}
	if _, err := b.Get(ctx, "rec"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after expiry: %v, want ErrNotFound", err)
	}
	if _, _, err := b.TakeBlob(ctx, "blob"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("TakeBlob after expiry: %v, want ErrNotFound", err)
	}
}

func TestOpenOptions(t *testing.T) {
	ctx := context.Background()
	tt := redisForTest(t)
	bad := map[string][]redisstore.Option{
		"empty prefix":       {redisstore.WithKeyPrefix("")},
		"prefix with braces": {redisstore.WithKeyPrefix("a{b}")},
		"prefix with space":  {redisstore.WithKeyPrefix("a b")},
		"zero chunk size":    {redisstore.WithChunkSize(0)},
		"tls without rediss": {redisstore.WithTLSConfig(&tls.Config{})},
	}
	for name, opts := range bad {
		if st, err := redisstore.Open(ctx, tt.url, opts...); err == nil {
			st.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
	if _, err := redisstore.Open(ctx, "redis://127.0.0.1:6379/0?bogus=1"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("Open with an unknown option: %v, want an error naming it", err)
	}
}

// TestConformance runs the backend suite every session.Backend passes.
func TestConformance(t *testing.T) { sessiontest.Run(t, newBackend) }

// TestReplayConformance runs the replay state machine suite on Redis.
func TestReplayConformance(t *testing.T) { sessiontest.RunReplay(t, newBackend) }
