package session_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
)

// testOwner is the browser id the stashes of these tests belong to.
const testOwner = "browser-Owner-Marker"

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// newStore returns a Store over a real file backend, and the backend.
func newStore(t *testing.T, secrets ...[]byte) (*session.Store, *filestore.Store, string) {
	t.Helper()
	if len(secrets) == 0 {
		secrets = [][]byte{secret(1)}
	}
	path := filepath.Join(t.TempDir(), "postern.db")
	b, err := filestore.Open(path, filestore.WithSweepInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	s, err := session.NewSealer(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return session.NewStore(b, s), b, path
}

func readAllClose(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return data
}

func TestStashRoundTripAndNothingReadableAtRest(t *testing.T) {
	ctx := context.Background()
	st, _, path := newStore(t)
	body := []byte(strings.Repeat("card=4111111111111111&name=Ada+Lovelace&", 5000))
	req := session.Stored{
		Method:  http.MethodPost,
		URL:     "/checkout?step=pay",
		Header:  http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Secret-Header": {"HeaderValueMarker"}},
		Owner:   testOwner,
		Created: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Size:    int64(len(body)),
		Cookie:  "JSESSIONID=CookieMarker",
		// An opaque id made at interception.
		IdempotencyKey: "IdemKeyMarker",
	}
	n, err := st.PutStash(ctx, "stashIdMarker", req, bytes.NewReader(body), 1<<20, time.Hour)
	if err != nil || n != int64(len(body)) {
		t.Fatalf("PutStash = %d, %v", n, err)
	}
	if err := st.SaveSession(ctx, "sid1", session.Record{User: "ada", AccessToken: "AccessTokenMarker"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, marker := range []string{"4111111111111111", "Lovelace", "HeaderValueMarker", "Owner-Marker", "/checkout", "AccessTokenMarker", "CookieMarker", "IdemKeyMarker"} {
		if bytes.Contains(raw, []byte(marker)) {
			t.Errorf("the store file contains %q in the clear", marker)
		}
	}

	got, rc, _, err := st.Lease(ctx, "stashIdMarker", testOwner, "t1", 10*time.Second)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	if data := readAllClose(t, rc); !bytes.Equal(data, body) {
		t.Fatalf("body: got %d bytes, want %d equal bytes", len(data), len(body))
	}
	if got.Method != req.Method || got.URL != req.URL || got.Owner != req.Owner || got.Size != req.Size ||
		!got.Created.Equal(req.Created) || got.Header.Get("X-Secret-Header") != "HeaderValueMarker" ||
		got.Cookie != req.Cookie || got.IdempotencyKey != req.IdempotencyKey {
		t.Fatalf("Lease meta = %+v, want %+v", got, req)
	}
	if _, _, _, err := st.Lease(ctx, "stashIdMarker", testOwner, "t2", 10*time.Second); !errors.Is(err, session.ErrState) {
		t.Fatalf("second Lease: err = %v, want ErrState", err)
	}
	if err := st.Unlease(ctx, "stashIdMarker", "t1"); err != nil {
		t.Fatal(err)
	}
	_, rc, _, err = st.Lease(ctx, "stashIdMarker", testOwner, "t2", 10*time.Second)
	if err != nil {
		t.Fatalf("Lease after Unlease: %v", err)
	}
	if data := readAllClose(t, rc); !bytes.Equal(data, body) {
		t.Fatal("body changed across Unlease")
	}
	if err := st.Settle(ctx, "stashIdMarker", "t2", "failed"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.Lease(ctx, "stashIdMarker", testOwner, "t3", 10*time.Second); !errors.Is(err, session.ErrState) {
		t.Fatalf("Lease after Settle: err = %v, want ErrState", err)
	}
}

func TestStashLimitsAndSizes(t *testing.T) {
	ctx := context.Background()
	st, _, _ := newStore(t)
	for _, tc := range []struct {
		name     string
		declared int64
		body     int
		limit    int64
		want     error // nil: kept
	}{
		{"exactly the limit", 100, 100, 100, nil},
		{"unknown length within limit", -1, 100, 100, nil},
		{"empty", 0, 0, 100, nil},
		{"one over, unknown length", -1, 101, 100, session.ErrTooLarge},
		{"declared over the limit", 101, 101, 100, session.ErrTooLarge},
		{"longer than declared", 10, 100, 1000, errors.New("mismatch")},
		{"shorter than declared", 100, 10, 1000, errors.New("mismatch")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := session.NewID()
			_, err := st.PutStash(ctx, id, session.Stored{Owner: testOwner, Size: tc.declared}, bytes.NewReader(make([]byte, tc.body)), tc.limit, time.Hour)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("PutStash: %v", err)
			case tc.want == nil:
				_, rc, _, err := st.Lease(ctx, id, testOwner, "t", 10*time.Second)
				if err != nil {
					t.Fatalf("Lease: %v", err)
				}
				if n := len(readAllClose(t, rc)); n != tc.body {
					t.Fatalf("body %d bytes, want %d", n, tc.body)
				}
				return
			case err == nil:
				t.Fatalf("PutStash succeeded, want %v", tc.want)
			case errors.Is(tc.want, session.ErrTooLarge) && !errors.Is(err, session.ErrTooLarge):
				t.Fatalf("PutStash: err = %v, want ErrTooLarge", err)
			}
			if _, _, _, err := st.Lease(ctx, id, testOwner, "t", 10*time.Second); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("after a refused PutStash, Lease: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestSessionsAndLoginState(t *testing.T) {
	ctx := context.Background()
	st, _, _ := newStore(t)
	rec := session.Record{User: "ada", Email: "ada@example.com", Groups: []string{"ops", "dev"}, Method: "oidc",
		LoginAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), RefreshToken: "rt"}
	if err := st.SaveSession(ctx, "sid", rec, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetSession(ctx, "sid")
	if err != nil || got.User != "ada" || len(got.Groups) != 2 || got.RefreshToken != "rt" || !got.LoginAt.Equal(rec.LoginAt) {
		t.Fatalf("GetSession = %+v, %v", got, err)
	}
	if err := st.DeleteSession(ctx, "sid"); err != nil {
		t.Fatal(err)
	}
	for _, sid := range []string{"sid", "", "has space", strings.Repeat("x", 300)} {
		if _, err := st.GetSession(ctx, sid); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("GetSession(%q): err = %v, want ErrNotFound", sid, err)
		}
	}

	ls := session.LoginState{BrowserID: "b", Nonce: "n", Verifier: "v", StashID: "s"}
	if err := st.SaveLoginState(ctx, "state1", ls, time.Minute); err != nil {
		t.Fatal(err)
	}
	// A state is used at most once, even by racing callbacks.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 20 {
		wg.Go(func() {
			got, err := st.TakeLoginState(ctx, "state1")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && got == ls:
				wins++
			case !errors.Is(err, session.ErrNotFound):
				t.Errorf("TakeLoginState: %+v, %v", got, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d callers took the login state, want 1", wins)
	}
}

// move copies the raw entry under from to the key to, optionally with the
// body of another entry, as an attacker with write access to the store could.
func move(t *testing.T, b *filestore.Store, metaFrom, bodyFrom, to string) {
	t.Helper()
	ctx := context.Background()
	e, err := b.ReadEntry(ctx, metaFrom)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := b.OpenBody(ctx, bodyFrom, session.BodyStash)
	if err != nil {
		t.Fatal(err)
	}
	body := readAllClose(t, rc)
	if _, err := b.PutEntry(ctx, to, e.Meta, e.State, bytes.NewReader(body), 1<<20, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func TestMovedEntriesDoNotOpen(t *testing.T) {
	ctx := context.Background()
	st, b, _ := newStore(t)
	for _, id := range []string{"a", "b"} {
		if _, err := st.PutStash(ctx, id, session.Stored{Method: "POST", Owner: testOwner, Size: -1}, strings.NewReader("body of "+id), 100, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Whole entry moved: its meta does not open under the new name.
	move(t, b, "stash:a", "stash:a", "stash:c")
	// (Its owner tag is bound to the old id too: whichever check comes
	// first refuses it.)
	if _, _, _, err := st.Lease(ctx, "c", testOwner, "t", 10*time.Second); !errors.Is(err, session.ErrCorrupt) && !errors.Is(err, session.ErrNotOwner) {
		t.Fatalf("entry moved to another id: err = %v, want ErrCorrupt or ErrNotOwner", err)
	}
	// Only the body swapped: the meta opens, the body does not.
	move(t, b, "stash:b", "stash:a", "stash:b")
	_, rc, _, err := st.Lease(ctx, "b", testOwner, "t", 10*time.Second)
	if err != nil {
		t.Fatalf("Lease with a swapped body: %v (the meta is genuine)", err)
	}
	defer rc.Close()
	if data, err := io.ReadAll(rc); !errors.Is(err, session.ErrCorrupt) || len(data) != 0 {
		t.Fatalf("reading a swapped body = %q, %v; want nothing and ErrCorrupt", data, err)
	}
	// A session record moved into a login state does not open either.
	if err := st.SaveSession(ctx, "x", session.Record{User: "ada"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	raw, err := b.Get(ctx, "sess:x")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "login:x", raw, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TakeLoginState(ctx, "x"); !errors.Is(err, session.ErrCorrupt) {
		t.Fatalf("record moved across namespaces: err = %v, want ErrCorrupt", err)
	}
}

func TestRotationAcrossStore(t *testing.T) {
	ctx := context.Background()
	st, b, _ := newStore(t, secret(1))
	if _, err := st.PutStash(ctx, "s", session.Stored{Owner: testOwner, Size: 3}, strings.NewReader("old"), 10, time.Hour); err != nil {
		t.Fatal(err)
	}
	rotated, err := session.NewSealer([][]byte{secret(2), secret(1)})
	if err != nil {
		t.Fatal(err)
	}
	st2 := session.NewStore(b, rotated)
	_, rc, _, err := st2.Lease(ctx, "s", testOwner, "t", 10*time.Second)
	if err != nil {
		t.Fatalf("Lease after rotation: %v", err)
	}
	if body := readAllClose(t, rc); string(body) != "old" {
		t.Fatalf("body after rotation = %q", body)
	}
	// Once the old secret is dropped, its entries are corrupt, not a crash.
	if err := st.SaveSession(ctx, "sid", session.Record{User: "u"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := session.NewSealer([][]byte{secret(2)})
	if _, err := session.NewStore(b, onlyNew).GetSession(ctx, "sid"); !errors.Is(err, session.ErrCorrupt) {
		t.Fatalf("GetSession with the sealing secret removed: err = %v, want ErrCorrupt", err)
	}
}

func TestUnavailablePassesThrough(t *testing.T) {
	ctx := context.Background()
	st, b, _ := newStore(t)
	_ = b.Close()
	if err := st.Ping(ctx); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Ping: err = %v, want ErrUnavailable", err)
	}
	if _, err := st.GetSession(ctx, "sid"); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("GetSession: err = %v, want ErrUnavailable", err)
	}
	if _, err := st.PutStash(ctx, "s", session.Stored{Size: -1}, strings.NewReader("x"), 10, time.Hour); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("PutStash: err = %v, want ErrUnavailable", err)
	}
	if _, _, _, err := st.Lease(ctx, "s", testOwner, "t", 10*time.Second); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Lease: err = %v, want ErrUnavailable", err)
	}
}
