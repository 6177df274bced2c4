package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

const (
	uploadSize = 64 << 20
	// heapGrowthBound is the most the gateway's heap may grow while a
	// 64 MiB upload is stashed and replayed: a quarter of it, so a gateway
	// that holds the body whole anywhere fails.
	heapGrowthBound = 16 << 20
	heapMetric      = "go_memstats_heap_inuse_bytes"
)

// upload is a multipart form with one file of uploadSize pseudo-random
// bytes, generated as it is sent: the test never holds it in memory.
type upload struct {
	ctype      string
	head, tail []byte
}

func newUpload(t *testing.T) upload {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.WriteField("note", "a large upload"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.CreateFormFile("file", "big.bin"); err != nil {
		t.Fatal(err)
	}
	u := upload{ctype: w.FormDataContentType(), head: bytes.Clone(buf.Bytes())}
	buf.Reset()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	u.tail = bytes.Clone(buf.Bytes())
	return u
}

func (u upload) size() int64 { return int64(len(u.head)) + uploadSize + int64(len(u.tail)) }

// body is the whole form, the same bytes on every call.
func (u upload) body() io.Reader {
	return io.MultiReader(bytes.NewReader(u.head), io.LimitReader(rand.NewChaCha8([32]byte{42}), uploadSize), bytes.NewReader(u.tail))
}

// heapSampler scrapes the gateway's heap in use every 50 ms until stopped
// (at most two minutes) and keeps the largest value.
type heapSampler struct {
	stop    context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	max     float64
	samples int
	errs    int
}

func sampleHeap(g *gatewayProc) *heapSampler {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s := &heapSampler{stop: cancel}
	s.wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			v, err := g.metric(ctx, heapMetric)
			s.mu.Lock()
			switch {
			case err != nil && ctx.Err() != nil: // stopped mid-scrape
			case err != nil:
				s.errs++
			default:
				s.samples++
				s.max = max(s.max, v)
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return s
}

// done stops sampling and returns the peak, the number of samples and of
// failed scrapes.
func (s *heapSampler) done() (peak float64, samples, errs int) {
	s.stop()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples, s.errs
}

// TestLargeUploadBoundedMemory sends a 64 MiB multipart upload while logged
// out to a gateway process on the file store (--stash-max-body 100MiB): it
// is stashed, replayed byte for byte after the login, and the gateway's
// heap, scraped from its metrics listener throughout, grows by less than
// 16 MiB.
func TestLargeUploadBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends and replays 64 MiB")
	}
	up := newRecorder(t)
	s := newSetup(t, up.URL, "file:"+filepath.Join(t.TempDir(), "store"))
	s.extraArgs = []string{"--stash-max-body", "100MiB"}
	g := s.start(t)
	b := newBrowser(t)
	// Warm up the paths the upload takes (pages, cookies, store).
	b.At(g.base).SubmitWhileLoggedOut(http.MethodPost, "/warmup", formType, []byte("x=1"))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base, err := g.metric(ctx, heapMetric)
	if err != nil || base == 0 {
		t.Fatalf("scrape %s: %v (value %v)", heapMetric, err, base)
	}
	sampler := sampleHeap(g)
	start := time.Now()

	u := newUpload(t)
	sent := sha256.New()
	resp, err := b.Send(ctx, http.MethodPost, g.base+"/upload", u.ctype, io.TeeReader(u.body(), sent), u.size())
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("64 MiB upload without a session: status %d, want 307", resp.StatusCode)
	}
	stashed := time.Since(start)
	// The browser follows the 307 with the same body; the login does not
	// read it (it was stashed once).
	loc := resp.Header.Get("Location")
	resp, err = b.Send(ctx, http.MethodPost, g.base+loc, u.ctype, u.body(), u.size())
	if err != nil {
		t.Fatalf("following the 307 with the body: %v", err)
	}
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != loc {
		t.Fatalf("following the 307: status %d Location %q, want 303 to the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	f := gatewaytest.HiddenFields(gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, g.base+loc, "", nil), http.StatusOK))

	resp = b.At(g.base).Login(f, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/upload" {
		t.Fatalf("login: status %d, Location %q; want 303 to /upload", resp.StatusCode, resp.Header.Get("Location"))
	}
	replayed := time.Since(start)
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, g.base+"/upload", "", nil), http.StatusOK)
	peak, samples, errs := sampler.done()

	var got []gatewaytest.Request
	for _, r := range up.Submissions() {
		if r.URI == "/upload" {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("the upload reached the upstream %d times, want once", len(got))
	}
	want := hex.EncodeToString(sent.Sum(nil))
	if got[0].Size != u.size() || got[0].SHA256 != want || got[0].Err != nil {
		t.Errorf("upstream got %d bytes sha256 %s (read error %v); sent %d bytes sha256 %s", got[0].Size, got[0].SHA256, got[0].Err, u.size(), want)
	}
	if !strings.Contains(page, "POST /upload user=alice replayed=true") {
		t.Errorf("result page:\n%.400s", page)
	}

	growth := peak - base
	t.Logf("64 MiB upload: stashed in %v, replayed by %v; gateway %s base %.1f MiB, peak %.1f MiB, growth %.1f MiB (bound %d MiB; %d samples, %d failed scrapes)",
		stashed.Round(time.Millisecond), replayed.Round(time.Millisecond), heapMetric, base/(1<<20), peak/(1<<20), growth/(1<<20), heapGrowthBound>>20, samples, errs)
	if samples < 5 {
		t.Errorf("only %d heap samples during the upload and replay", samples)
	}
	if growth >= heapGrowthBound {
		t.Errorf("the gateway's heap grew by %.1f MiB, want under %d MiB", growth/(1<<20), heapGrowthBound>>20)
	}
}
