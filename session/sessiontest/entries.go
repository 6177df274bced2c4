package sessiontest

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/postern/postern/session"
)

// The backend half of the replay state machine (session.Entries), tested
// without a Store: what a backend must do whatever the states mean.

func putEntry(t *testing.T, b session.Backend, k string, body []byte) {
	t.Helper()
	n, err := b.PutEntry(ctxFor(t), k, []byte("meta"), []byte("s0"), bytes.NewReader(body), int64(len(body)), ttl)
	if err != nil || n != int64(len(body)) {
		t.Fatalf("PutEntry = %d, %v", n, err)
	}
}

func readBody(t *testing.T, b session.Backend, k string, which session.Bodies) ([]byte, error) {
	t.Helper()
	rc, err := b.OpenBody(ctxFor(t), k, which)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func testEntryRoundTrip(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	for _, n := range []int64{1, chunk - 1, chunk, chunk + 1, 3*chunk + 17} {
		k := key(t, "e")
		src, _ := body(n, uint64(n))
		want, _ := io.ReadAll(src)
		putEntry(t, b, k, want)
		e, err := b.ReadEntry(ctx, k)
		if err != nil || string(e.Meta) != "meta" || string(e.State) != "s0" || e.Answer != nil {
			t.Fatalf("ReadEntry = %+v, %v", e, err)
		}
		got, err := readBody(t, b, k, session.BodyStash)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("body of %d bytes: got %d bytes, %v", n, len(got), err)
		}
		if _, err := readBody(t, b, k, session.BodyAnswer); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("answer body before PutAnswer: %v, want ErrNotFound", err)
		}
	}
	if _, err := b.ReadEntry(ctx, key(t, "missing")); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("ReadEntry of a missing entry: %v, want ErrNotFound", err)
	}
}

func testEntryTooLarge(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "big")
	_, err := b.PutEntry(ctx, k, []byte("m"), []byte("s"), bytes.NewReader(make([]byte, 2*chunk+1)), 2*chunk, ttl)
	if !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("PutEntry over its limit: %v, want ErrTooLarge", err)
	}
	if _, err := b.ReadEntry(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("ReadEntry after a refused PutEntry: %v, want ErrNotFound", err)
	}
	_, err = b.PutEntry(ctx, k, []byte("m"), []byte("s"), &failingReader{n: chunk, err: errors.New("the client went away")}, 1<<20, ttl)
	if err == nil || errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("PutEntry with a failing body: %v, want the body's error", err)
	}
	if _, err := b.ReadEntry(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("ReadEntry after a failed body: %v, want ErrNotFound", err)
	}
}

func testEntryUpdate(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "u")
	putEntry(t, b, k, []byte("stash body"))
	refusal := errors.New("refused")
	e, err := b.UpdateEntry(ctx, k, func(e session.Entry) ([]byte, session.Change, error) {
		return []byte("never"), session.Change{Free: session.BodyStash}, refusal
	})
	if !errors.Is(err, refusal) || string(e.State) != "s0" {
		t.Fatalf("refused UpdateEntry = %+v, %v; want the refusal and the entry as it was", e, err)
	}
	if got, err := readBody(t, b, k, session.BodyStash); err != nil || string(got) != "stash body" {
		t.Fatalf("body after a refused update: %q, %v", got, err)
	}
	e, err = b.UpdateEntry(ctx, k, func(e session.Entry) ([]byte, session.Change, error) {
		return []byte("s1"), session.Change{Keep: 2 * ttl}, nil
	})
	if err != nil || string(e.State) != "s0" {
		t.Fatalf("UpdateEntry = %+v, %v; want the entry it decided on", e, err)
	}
	n, err := b.PutAnswer(ctx, k, []byte("answer meta"), bytes.NewReader(bytes.Repeat([]byte("a"), chunk+3)), 1<<20,
		func(e session.Entry) ([]byte, session.Change, error) {
			if string(e.State) != "s1" {
				return nil, session.Change{}, refusal
			}
			return []byte("s2"), session.Change{Free: session.BodyStash}, nil
		})
	if err != nil || n != chunk+3 {
		t.Fatalf("PutAnswer = %d, %v", n, err)
	}
	e, err = b.ReadEntry(ctx, k)
	if err != nil || string(e.State) != "s2" || string(e.Answer) != "answer meta" || string(e.Meta) != "meta" {
		t.Fatalf("after PutAnswer: %+v, %v", e, err)
	}
	if _, err := readBody(t, b, k, session.BodyStash); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("freed stash body: %v, want ErrNotFound", err)
	}
	if got, err := readBody(t, b, k, session.BodyAnswer); err != nil || len(got) != chunk+3 {
		t.Fatalf("answer body: %d bytes, %v", len(got), err)
	}
	// A refused PutAnswer keeps the answer there was.
	_, err = b.PutAnswer(ctx, k, []byte("other"), bytes.NewReader([]byte("x")), 10,
		func(session.Entry) ([]byte, session.Change, error) { return nil, session.Change{}, refusal })
	if !errors.Is(err, refusal) {
		t.Fatalf("refused PutAnswer: %v", err)
	}
	if e, _ := b.ReadEntry(ctx, k); string(e.Answer) != "answer meta" {
		t.Fatalf("a refused PutAnswer replaced the answer: %q", e.Answer)
	}
	_, err = b.UpdateEntry(ctx, k, func(e session.Entry) ([]byte, session.Change, error) {
		return e.State, session.Change{Free: session.BodyAnswer}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readBody(t, b, k, session.BodyAnswer); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("freed answer body: %v, want ErrNotFound", err)
	}
	if _, err := b.UpdateEntry(ctx, key(t, "missing"), func(session.Entry) ([]byte, session.Change, error) {
		t.Error("decide called for a missing entry")
		return nil, session.Change{}, nil
	}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("UpdateEntry of a missing entry: %v, want ErrNotFound", err)
	}
}

// testEntryUpdateRace: of concurrent updates that each move s0 on only
// from s0, exactly one applies (the others see its state and refuse).
func testEntryUpdateRace(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "race")
	putEntry(t, b, k, []byte("x"))
	taken := errors.New("taken")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := b.UpdateEntry(ctx, k, func(e session.Entry) ([]byte, session.Change, error) {
				if string(e.State) != "s0" {
					return nil, session.Change{}, taken
				}
				return []byte{'w', byte('a' + i)}, session.Change{}, nil
			})
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, taken):
				t.Errorf("losing update: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d updates from s0 applied, want 1", wins)
	}
}

func testEntryExpiry(t *testing.T, b session.Backend) {
	ctx := ctxFor(t)
	k := key(t, "exp")
	if _, err := b.PutEntry(ctx, k, []byte("m"), []byte("s"), bytes.NewReader([]byte("body")), 10, expiryTTL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "entry", func() error {
		_, err := b.ReadEntry(ctx, k)
		return err
	})
	if _, err := b.OpenBody(ctx, k, session.BodyStash); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("body of an expired entry: %v, want ErrNotFound", err)
	}
}
