package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
)

// One address's submissions are refused with 429 once their bytes reach
// its share, on the file store and on Redis; another address still gets
// its submission kept.
func TestStashLimitPerAddress(t *testing.T) {
	opts := func(o *gateway.Options) { o.StashMaxBytesPerAddress = 3 << 20; o.StashMaxPerAddress = 100 }
	t.Run("file store", func(t *testing.T) { stashLimitPerAddress(t, newEnv(t, opts)) })
	t.Run("redis", func(t *testing.T) { stashLimitPerAddress(t, newRedisEnv(t, opts)) })
}

func stashLimitPerAddress(t *testing.T, e *env) {
	body := bytes.Repeat([]byte("x"), 512<<10)
	for i := range 8 {
		size := int64(len(body))
		if i%3 == 2 {
			size = -1
		}
		resp, err := e.browser().Send(context.Background(), http.MethodPost, "/upload", "application/octet-stream", bytes.NewReader(body), size)
		if err != nil {
			t.Fatal(err)
		}
		page := gatewaytest.ReadBody(t, resp)
		want := http.StatusTemporaryRedirect
		if i >= 6 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("submission %d: %d, want %d\n%.300s", i+1, resp.StatusCode, want, page)
		}
	}
	resp, err := e.browser().From("127.0.0.2").Send(context.Background(), http.MethodPost, "/upload", "application/octet-stream", bytes.NewReader(body), -1)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("another address: %d, want 307", resp.StatusCode)
	}
}

// Chunked submissions racing each other are counted as they stream: the
// store budget stops them together, within one body of the budget, where
// counting a chunked body as 0 bytes let every one of them in.
func TestStoreBudgetCountsChunkedBodies(t *testing.T) {
	e := newEnv(t)
	used, err := e.backend.(session.UsageReporter).Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const room, each, n = 4 << 20, 1 << 20, 16
	e.stop()
	e.start(func(o *gateway.Options) { o.StoreBudget = used + room })

	body := bytes.Repeat([]byte("y"), each)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := e.browser().Send(context.Background(), http.MethodPost, "/upload", "application/octet-stream", bytes.NewReader(body), -1)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	kept := 0
	for _, s := range statuses {
		switch s {
		case http.StatusTemporaryRedirect:
			kept++
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("a racing submission got %d, want 307 or 503", s)
		}
	}
	if kept == 0 || kept*each > room+each {
		t.Fatalf("%d of %d racing chunked submissions of %d bytes kept with %d bytes of budget left, want 1 to %d",
			kept, n, each, room, (room+each)/each)
	}
}
