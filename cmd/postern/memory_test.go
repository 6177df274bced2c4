package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session/redisstore/redistest"
)

const (
	uploadSize = 64 << 20
	// hwmGrowthBound is the most the gateway process's peak resident set
	// (VmHWM) may grow while a 64 MiB upload is stashed, replayed and its
	// answer shown: a quarter of it, so a gateway that holds the body whole
	// anywhere, or maps it in (bbolt's mmap), fails.
	hwmGrowthBound = 16 << 20
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

// vmHWM returns the peak resident set size of process pid, in bytes, from
// /proc/PID/status: what the kernel counts, not only the Go heap (page
// cache-backed memory maps, runtime overhead and freed-but-kept memory too).
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the gateway's /proc status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestLargeUploadBoundedMemory sends a 64 MiB multipart upload while logged
// out to a real gateway process (--stash-max-body 100MiB), on the file store
// and on Redis: it is stashed (307), the login follows, it is replayed byte
// for byte and its answer shown, and the process's peak resident set
// (VmHWM in /proc/PID/status) grows by at most 16 MiB over its value before
// the upload.
//
// The gateway is built without the race detector even under -race: the
// race runtime's shadow memory is not the product's memory.
func TestLargeUploadBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends and replays 64 MiB")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads VmHWM from /proc")
	}
	stores := map[string]func(t *testing.T) string{
		"file":  func(t *testing.T) string { return "file:" + filepath.Join(t.TempDir(), "store") },
		"redis": func(t *testing.T) string { return redistest.URLForTest(t) },
	}
	for _, name := range []string{"file", "redis"} {
		t.Run(name, func(t *testing.T) { largeUploadBoundedMemory(t, stores[name](t)) })
	}
}

func largeUploadBoundedMemory(t *testing.T, store string) {
	up := newRecorder(t)
	s := newSetup(t, up.URL, store)
	s.extraArgs = []string{"--stash-max-body", "100MiB"}
	s.noRace = true
	g := s.start(t)
	b := newBrowser(t)
	// Warm up the paths the upload takes (pages, cookies, store, replay,
	// result), so the base is the gateway's working size.
	f := b.At(g.base).SubmitWhileLoggedOut(http.MethodPost, "/warmup", formType, []byte("x=1"))
	gatewaytest.ReadBody(t, b.At(g.base).Login(f, procUser, procPassword))
	gatewaytest.ReadBody(t, b.Do(http.MethodGet, g.base+"/warmup", "", nil))
	gatewaytest.ReadBody(t, b.Do(http.MethodGet, g.base+"/.postern/logout", "", nil))
	b = newBrowser(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := vmHWM(t, g.proc.Pid)
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
	f = gatewaytest.HiddenFields(gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, g.base+loc, "", nil), http.StatusOK))

	resp = b.At(g.base).Login(f, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/upload" {
		t.Fatalf("login: status %d, Location %q; want 303 to /upload", resp.StatusCode, resp.Header.Get("Location"))
	}
	replayed := time.Since(start)
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, g.base+"/upload", "", nil), http.StatusOK)
	peak := vmHWM(t, g.proc.Pid)

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
	t.Logf("64 MiB upload on %s: stashed in %v, replayed by %v; gateway VmHWM before %.1f MiB, after %.1f MiB, growth %.1f MiB (bound %d MiB)",
		strings.SplitN(store, ":", 2)[0], stashed.Round(time.Millisecond), replayed.Round(time.Millisecond), float64(base)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20), hwmGrowthBound>>20)
	if growth > hwmGrowthBound {
		t.Errorf("the gateway's peak RSS (VmHWM) grew by %.1f MiB, want at most %d MiB", float64(growth)/(1<<20), hwmGrowthBound>>20)
	}
}
