package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/postern/postern/session"
)

// BenchmarkRewriteHeaders is the gateway's own work on a proxied request's
// headers: client-sent identity headers removed, X-Forwarded-* set, the
// gateway's cookie dropped, the identity headers set.
//
//	go test -run '^$' -bench RewriteHeaders -benchmem ./gateway
func BenchmarkRewriteHeaders(b *testing.B) {
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	up, _ := url.Parse("http://127.0.0.1:9000")
	who := &principal{sid: "sid", rec: session.Record{User: "alice", Email: "alice@example.com", Groups: []string{"staff", "admins"}}}
	in := httptest.NewRequest(http.MethodGet, "http://gw.example/app/page?x=1", nil)
	in.Header.Set("Accept", "text/html")
	in.Header.Set("User-Agent", "bench")
	in.Header.Set("Cookie", "_postern=abcdef; theme=dark")
	in.Header.Set("X-Forwarded-User", "mallory")
	b.ReportAllocs()
	for b.Loop() {
		out := in.Clone(in.Context())
		pr := &httputil.ProxyRequest{In: in, Out: out}
		pr.SetURL(up)
		g.setForwarded(pr)
		dropOwnCookie(out.Header, "_postern")
		g.setIdentity(out.Header, who, up)
		if out.Header.Get("X-Forwarded-User") != "alice" || out.Header.Get("Cookie") != "theme=dark" {
			b.Fatal(out.Header)
		}
	}
}
