package session_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/postern/postern/session"
)

// FuzzCookieLoad: whatever a browser sends, Load returns a usable cookie and
// never accepts it unless it was written with the secret.
func FuzzCookieLoad(f *testing.F) {
	c, err := session.NewCookies(session.CookieOptions{Secrets: [][]byte{secret(1)}})
	if err != nil {
		f.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := c.Save(rec, httptest.NewRequest("GET", "/", nil), &session.Cookie{BrowserID: "b", CSRF: "c", SID: "s"}); err != nil {
		f.Fatal(err)
	}
	f.Add(rec.Result().Cookies()[0].Value)
	f.Add("")
	f.Add("MTIzNHxhYmN8ZGVm")
	f.Fuzz(func(t *testing.T, value string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: "_postern", Value: value})
		ck := c.Load(r)
		if ck == nil || ck.BrowserID == "" || ck.CSRF == "" {
			t.Fatalf("Load(%q) = %+v", value, ck)
		}
	})
}

// FuzzOpen: stored bytes never panic, and only the seeds' genuine sealed
// values open (the fuzzing workers re-run the setup with fresh nonces, so
// the check is on the plaintext).
func FuzzOpen(f *testing.F) {
	s, err := session.NewSealer([][]byte{secret(1)})
	if err != nil {
		f.Fatal(err)
	}
	v, _ := s.Seal("k", []byte("value"))
	r, _ := s.SealStream("k", bytes.NewReader([]byte("stream")))
	st, _ := io.ReadAll(r)
	f.Add(v)
	f.Add(st)
	f.Fuzz(func(t *testing.T, data []byte) {
		if plain, err := s.Open("k", data); err == nil && string(plain) != "value" {
			t.Fatalf("forged value opened: %q", plain)
		}
		if plain, err := io.ReadAll(s.OpenStream("k", bytes.NewReader(data))); err == nil && string(plain) != "stream" {
			t.Fatalf("forged stream opened: %q", plain)
		}
	})
}
