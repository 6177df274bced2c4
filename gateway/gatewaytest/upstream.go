package gatewaytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Request is one request as an Upstream received it.
type Request struct {
	N      int // its place in the order of arrival, from 1
	Method string
	Path   string // decoded, as r.URL.Path
	Query  string // raw, as r.URL.RawQuery
	URI    string // as r.URL.RequestURI()
	Header http.Header
	// Body is the whole body, or only its first bytes on an Upstream from
	// NewHashingUpstream; Size and SHA256 always describe the whole body.
	Body   []byte
	Size   int64
	SHA256 string // hex
	Err    error  // reading the body failed
}

// Answer writes the upstream's response to a request, once it has been read
// and recorded; r.Body is already consumed, got holds what it carried.
type Answer func(w http.ResponseWriter, r *http.Request, got Request)

// Upstream is a real HTTP server on 127.0.0.1 standing in for the protected
// app: it records every request and answers with Echo unless told otherwise.
type Upstream struct {
	*httptest.Server
	keep int64 // bytes of a body kept in Request.Body; -1: all

	mu     sync.Mutex
	reqs   []Request
	answer Answer
}

// NewUpstream starts an Upstream that keeps every body whole; it is closed
// when the test ends.
func NewUpstream(t testing.TB) *Upstream {
	return newUpstream(t, -1)
}

// NewHashingUpstream starts an Upstream that keeps only the first keep bytes
// of each body and hashes the rest while reading it, for tests whose bodies
// are too large to keep.
func NewHashingUpstream(t testing.TB, keep int) *Upstream {
	return newUpstream(t, int64(keep))
}

func newUpstream(t testing.TB, keep int64) *Upstream {
	t.Helper()
	u := &Upstream{keep: keep}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	var body bytes.Buffer
	var dst io.Writer = &body
	if u.keep >= 0 {
		dst = &headWriter{b: &body, max: int(u.keep)}
	}
	n, err := io.Copy(io.MultiWriter(h, dst), r.Body)
	got := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, URI: r.URL.RequestURI(),
		Header: r.Header.Clone(), Body: body.Bytes(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Err: err}
	u.mu.Lock()
	got.N = len(u.reqs) + 1
	u.reqs = append(u.reqs, got)
	answer := u.answer
	u.mu.Unlock()
	if answer == nil {
		answer = Echo
	}
	answer(w, r, got)
}

// SetAnswer replaces how the upstream answers; nil restores Echo.
func (u *Upstream) SetAnswer(a Answer) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.answer = a
}

// Requests returns every request received so far, in order.
func (u *Upstream) Requests() []Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Request(nil), u.reqs...)
}

// Submissions returns the requests that would change something upstream:
// all but GET and HEAD.
func (u *Upstream) Submissions() []Request {
	return Submissions(u.Requests())
}

// Submissions returns the requests of reqs other than GET and HEAD.
func Submissions(reqs []Request) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			out = append(out, r)
		}
	}
	return out
}

// Echo is the default Answer: a small HTML page naming what was received,
// "app answer #N: METHOD URI user=U replayed=R size=S sha=H", where U and R
// are the X-Forwarded-User and X-Postern-Replayed headers, then a relative
// link. It sets X-App: checkout.
func Echo(w http.ResponseWriter, r *http.Request, got Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-App", "checkout")
	fmt.Fprintf(w, "<p>app answer #%d: %s %s user=%s replayed=%s size=%d sha=%s</p><a href=\"next\">next</a>",
		got.N, got.Method, got.URI, got.Header.Get("X-Forwarded-User"), got.Header.Get("X-Postern-Replayed"), got.Size, got.SHA256)
}

// headWriter keeps the first max bytes written to it and discards the rest.
type headWriter struct {
	b   *bytes.Buffer
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - w.b.Len(); room > 0 {
		w.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
