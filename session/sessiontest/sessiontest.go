package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
		{"SetNX", testSetNX},
		{"SetNXExpiry", testSetNXExpiry},
		{"SetNXRace", testSetNXRace},
		{"SetNXInvalid", testSetNXInvalid},
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
		{"TakenBlobOutlivesTTL", testTakenBlobOutlivesTTL},
		{"EntryRoundTrip", testEntryRoundTrip},
		{"EntryTooLargeOrFailedLeavesNothing", testEntryTooLarge},
		{"EntryUpdate", testEntryUpdate},
		{"EntryUpdateRace", testEntryUpdateRace},
		{"EntryExpiry", testEntryExpiry},
		{"Counters", testCounters},
		{"CountersRace", testCountersRace},
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

func mustSet(t *testing.T, b session.Backend, k, v string) {
	t.Helper()
	if err := b.Set(ctxFor(t), k, []byte(v), ttl); err != nil {
		t.Fatalf("Set: %v", err)
	}
}
