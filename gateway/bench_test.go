package gateway_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/postern/postern/gateway"
)

// BenchmarkProxyLoggedIn measures the hot path: a logged-in GET proxied to
// the upstream, under concurrency. "upstream-conns/op" counts new upstream
// connections per request: with Go's default of two idle connections per
// host most requests open one; the gateway's tuned transport reuses them.
// Compare the two sub-benchmarks of one run:
//
//	go test -run '^$' -bench ProxyLoggedIn -benchmem ./gateway
func BenchmarkProxyLoggedIn(b *testing.B) {
	for _, tc := range []struct {
		name      string
		transport func() http.RoundTripper
	}{
		{"tuned", func() http.RoundTripper { return gateway.NewTransport() }},
		{"go-default", func() http.RoundTripper { return http.DefaultTransport.(*http.Transport).Clone() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newBenchEnv(b, tc.transport())
			var conns atomic.Int64
			e.up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			cookie := e.loginCookie(b)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/page", nil)
					req.Header.Set("Cookie", cookie)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(conns.Load())/float64(b.N), "upstream-conns/op")
		})
	}
}

// BenchmarkStashAndReplay measures one whole kept submission: the POST
// without a session is stashed (307), the login completes it (replay,
// answer kept, 303), and the answer is shown once at the original URL.
//
//	go test -run '^$' -bench StashAndReplay -benchmem ./gateway
func BenchmarkStashAndReplay(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		b.Run(formatSize(size), func(b *testing.B) {
			e := newBenchEnv(b, nil)
			body := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				br := e.browser()
				f := br.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/octet-stream", body)
				br.Follow(br.Login(f, testUser, testPassword), http.StatusOK)
			}
		})
	}
}

func formatSize(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
