package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
	"github.com/postern/postern/session/sessiontest"
)

// du returns the bytes of the regular files under dir and how many there
// are, like du on a folder of bodies.
func du(t *testing.T, dir string) (int64, int) {
	t.Helper()
	var total int64
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			total += fi.Size()
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total, n
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func openSealed(t *testing.T, path string, now func() time.Time) (*filestore.Store, *session.Store) {
	t.Helper()
	b, err := filestore.Open(path, filestore.WithSweepInterval(0), filestore.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	s, err := session.NewSealer([][]byte{bytes.Repeat([]byte{3}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return b, session.NewStore(b, s, session.WithStoreClock(now))
}

// TestFiftyLargeStashesLeaveNothing stashes 50 submissions of 2 MiB each,
// consumes them (answered and shown, settled after a redirect, discarded,
// expired and swept), and measures the database file and the bodies
// folder: the bodies are files outside bbolt, the database file stays small
// throughout, and once consumed every body's disk space is returned.
func TestFiftyLargeStashesLeaveNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB")
	}
	const (
		stashes = 50
		size    = 2 << 20
		dbBound = 1 << 20 // the DB holds small records only
	)
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "postern.db")
	clock := sessiontest.NewClock(time.Now())
	b, st := openSealed(t, path, clock.Now)
	bodies := path + ".bodies"

	ids := make([]string, stashes)
	for i := range ids {
		ids[i] = session.NewID()
		src := io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), size)
		ttl := time.Hour
		if i%5 == 4 {
			ttl = time.Minute // these expire unconsumed
		}
		if _, err := st.PutStash(ctx, ids[i], session.Stored{Method: "POST", Owner: "b", Size: size}, src, size, ttl); err != nil {
			t.Fatalf("PutStash %d: %v", i, err)
		}
	}
	used, files := du(t, bodies)
	db := fileSize(t, path)
	t.Logf("50 stashes of 2 MiB kept: database file %d KiB, bodies folder %.1f MiB in %d files", db>>10, float64(used)/(1<<20), files)
	if files != stashes || used < stashes*size {
		t.Fatalf("bodies folder holds %d bytes in %d files, want the %d bodies (at least %d bytes)", used, files, stashes, stashes*size)
	}
	if db > dbBound {
		t.Fatalf("database file is %d bytes with 50 large stashes kept, want at most %d: bodies belong outside bbolt", db, dbBound)
	}

	for i, id := range ids {
		switch i % 5 {
		case 0, 1: // replayed, answered, shown
			_, rc, _, err := st.Lease(ctx, id, "b", "t", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
				t.Fatalf("body %d: %d bytes, %v", i, n, err)
			}
			rc.Close()
			if err := st.MarkSent(ctx, id, "t"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Answer(ctx, id, "t", session.Result{Status: 200, Size: -1}, strings.NewReader(strings.Repeat("answer", 10000)), 1<<20); err != nil {
				t.Fatal(err)
			}
			_, rc, err = st.TakeAnswer(ctx, id, "b")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, rc)
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
		case 2: // replayed, the app redirected
			_, rc, _, err := st.Lease(ctx, id, "b", "t", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
			if err := st.MarkSent(ctx, id, "t"); err != nil {
				t.Fatal(err)
			}
			if err := st.Settle(ctx, id, "t", "redirected"); err != nil {
				t.Fatal(err)
			}
		case 3: // the person discarded it
			if err := st.Discard(ctx, id, "b"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The rest expire and the sweeper removes them.
	clock.Advance(2 * time.Minute)
	if _, err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	used, files = du(t, bodies)
	db = fileSize(t, path)
	usage, err := b.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after consuming them: database file %d KiB, bodies folder %d bytes in %d files, Usage %d KiB", db>>10, used, files, usage>>10)
	if files != 0 || used != 0 {
		t.Fatalf("bodies folder still holds %d bytes in %d files after every stash was consumed", used, files)
	}
	if db > dbBound {
		t.Fatalf("database file is %d bytes after the flood, want at most %d", db, dbBound)
	}
	if usage > dbBound {
		t.Fatalf("Usage is %d bytes after the flood, want at most %d", usage, dbBound)
	}
	// A late visit still learns what happened.
	if _, r, err := st.ReplayOf(ctx, ids[2], "b"); err != nil || r.State != session.StateSettled || r.Outcome != "redirected" {
		t.Fatalf("ReplayOf a settled stash = %+v, %v", r, err)
	}
}

// TestOrphanBodiesRemovedAtOpen leaves what a crash can leave in the bodies
// folder (a half-written temporary file, a body whose entry was never
// committed) and reopens: they are gone, and a kept stash still replays.
func TestOrphanBodiesRemovedAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "postern.db")
	clock := sessiontest.NewClock(time.Now())
	b, st := openSealed(t, path, clock.Now)
	if _, err := st.PutStash(ctx, "kept", session.Stored{Method: "POST", Owner: "b", Size: 5}, strings.NewReader("hello"), 10, time.Hour); err != nil {
		t.Fatal(err)
	}
	// The sender held a lease when the process died.
	_, rc, _, err := st.Lease(ctx, "kept", "b", "dead", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	bodies := path + ".bodies"
	for _, name := range []string{".tmp-123456", "0123456789abcdef0123456789abcdef.body"} {
		if err := os.WriteFile(filepath.Join(bodies, name), bytes.Repeat([]byte{1}, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bodies, "README"), []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}

	clock.Advance(11 * time.Second) // the dead sender's lease lapsed
	_, st = openSealed(t, path, clock.Now)
	ents, err := os.ReadDir(bodies)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, " "), "README") || !strings.Contains(strings.Join(names, " "), ".body") {
		t.Fatalf("bodies folder after reopening: %v, want the kept body and README", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".tmp-") || n == "0123456789abcdef0123456789abcdef.body" {
			t.Fatalf("orphan %s survived the reopen", n)
		}
	}
	// After the restart the lapsed lease is taken again: nothing was lost.
	_, rc, _, err = st.Lease(ctx, "kept", "b", "new", 10*time.Second)
	if err != nil {
		t.Fatalf("Lease after a restart: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "hello" {
		t.Fatalf("body after a restart %q", got)
	}
	_, _, _, err = st.Lease(ctx, "kept", "b", "third", 10*time.Second)
	if !errors.Is(err, session.ErrState) {
		t.Fatalf("second Lease after a restart: %v, want ErrState", err)
	}
}
