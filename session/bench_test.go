package session_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
)

// The session layer's share of a request, one piece at a time. Compare
// sub-benchmarks of one run, never numbers across machines:
//
//	go test -run '^$' -bench . -benchmem ./session

func benchCookies(b *testing.B) *session.Cookies {
	c, err := session.NewCookies(session.CookieOptions{Secrets: [][]byte{secret(1)}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func cookieRequest(b *testing.B, c *session.Cookies, ck *session.Cookie) *http.Request {
	rec := httptest.NewRecorder()
	if err := c.Save(rec, httptest.NewRequest(http.MethodGet, "/", nil), ck); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Cookie", "theme=dark; "+rec.Result().Cookies()[0].String()+"; lang=en")
	return req
}

// BenchmarkCookieLoad reads the session cookie of a request: a value seen
// before (every request of a logged-in browser after its first) and one
// seen for the first time (base64, HMAC-SHA256, AES-CTR, JSON).
func BenchmarkCookieLoad(b *testing.B) {
	ck := &session.Cookie{SID: session.NewID(), BrowserID: session.NewID(), CSRF: session.NewID()}
	b.Run("seen-before", func(b *testing.B) {
		c := benchCookies(b)
		req := cookieRequest(b, c, ck)
		b.ReportAllocs()
		for b.Loop() {
			if got := c.Load(req); got.IsNew {
				b.Fatal("cookie not accepted")
			}
		}
	})
	b.Run("first-sight", func(b *testing.B) {
		c := benchCookies(b)
		reqs := make([]*http.Request, 256)
		for i := range reqs {
			reqs[i] = cookieRequest(b, c, &session.Cookie{SID: ck.SID, BrowserID: ck.BrowserID, CSRF: strconv.Itoa(i)})
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// A fresh Cookies every 256 requests, so every value is new to it.
			if i%len(reqs) == 0 {
				b.StopTimer()
				c = benchCookies(b)
				b.StartTimer()
			}
			if got := c.Load(reqs[i%len(reqs)]); got.IsNew {
				b.Fatal("cookie not accepted")
			}
			i++
		}
	})
}

// plainBackend hides the file store's Watcher, so the Store keeps nothing
// in memory and every lookup reads and decodes the record.
type plainBackend struct{ session.Backend }

func benchStore(b *testing.B) (*filestore.Store, *session.Sealer) {
	fs, err := filestore.Open(filepath.Join(b.TempDir(), "postern.db"), filestore.WithSweepInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fs.Close() })
	s, err := session.NewSealer([][]byte{secret(1)})
	if err != nil {
		b.Fatal(err)
	}
	return fs, s
}

// BenchmarkSessionLookup finds the server-side session of a logged-in
// OIDC user (tokens included): kept in memory, and read from the file
// store and decoded.
func BenchmarkSessionLookup(b *testing.B) {
	for _, tc := range []struct {
		name   string
		plain  bool
		record session.Record
	}{
		{"in-memory", false, fullRecord()},
		{"from-store", true, fullRecord()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fs, sealer := benchStore(b)
			var backend session.Backend = fs
			if tc.plain {
				backend = plainBackend{fs}
			}
			st := session.NewStore(backend, sealer)
			ctx := context.Background()
			rec := tc.record
			rec.AccessToken = string(bytes.Repeat([]byte("a"), 900)) // tokens as big as real ones
			rec.IDToken = string(bytes.Repeat([]byte("i"), 1200))
			if err := st.SaveSession(ctx, "sid", rec, time.Hour); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if got, err := st.GetSession(ctx, "sid"); err != nil || got.User != rec.User {
					b.Fatal(got, err)
				}
			}
		})
	}
}

// BenchmarkStashWriteRead keeps a submission (sealed, on the file store)
// and takes it back whole under a lease, then settles it, as a login's
// replay does.
func BenchmarkStashWriteRead(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			fs, sealer := benchStore(b)
			st := session.NewStore(fs, sealer)
			ctx := context.Background()
			body := bytes.Repeat([]byte("s"), size)
			req := session.Stored{Owner: "browser", Method: http.MethodPost, URL: "/checkout", Header: http.Header{"Content-Type": {"text/plain"}}, Size: int64(size)}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				id := "stash" + strconv.Itoa(i)
				i++
				if _, err := st.PutStash(ctx, id, req, bytes.NewReader(body), int64(size), time.Hour); err != nil {
					b.Fatal(err)
				}
				_, rc, _, err := st.Lease(ctx, id, "browser", "token", 10*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil || n != int64(size) {
					b.Fatal(n, err)
				}
				if err := st.Settle(ctx, id, "token", "replayed"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
