package redisstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore/redistest"
)

// Changed returns only once every process watching has forgotten the key,
// even one that handles the notice late: b takes 300 ms to handle it, and
// a's Changed still returns after b's watcher ran, not before.
func TestChangedWaitsForEveryWatcher(t *testing.T) {
	url := redistest.URLForTest(t)
	prefix := "watch-" + session.NewID()[:8]
	open := func() *Store {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := Open(ctx, url, WithKeyPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	b.watch.slowHeard = 300 * time.Millisecond
	var heardA, heardB atomic.Int32
	if _, err := a.Watch(func(key string) {
		if key == "sess:x" {
			heardA.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Watch(func(key string) {
		if key == "sess:x" {
			heardB.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Changed(context.Background(), "sess:x"); err != nil {
		t.Fatal(err)
	}
	if heardA.Load() != 1 || heardB.Load() != 1 {
		t.Fatalf("Changed returned before every watcher heard: a %d, b %d", heardA.Load(), heardB.Load())
	}
}
