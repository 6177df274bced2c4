package gateway_test

import (
	"bytes"
	"crypto/rand"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

func multipartBody(t *testing.T, fileSize int) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("comment", "héllo wörld")
	fw, err := mw.CreateFormFile("file", "photo.bin")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, fileSize)
	_, _ = rand.Read(data)
	_, _ = fw.Write(data)
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// The whole browser flow of SPEC §1 for every method that is stashed and
// every kind of body: the upstream receives the same method, path, query,
// Content-Type and byte-identical body, exactly once, with identity and
// X-Postern-Replayed; the person then sees that answer once at the URL.
func TestSubmissionSurvivesLogin(t *testing.T) {
	binary := make([]byte, 70_000)
	_, _ = rand.Read(binary)
	mpType, mpBody := multipartBody(t, 100_000)
	cases := []struct {
		name, method, ctype string
		body                []byte
	}{
		{"form", http.MethodPost, "application/x-www-form-urlencoded", []byte("item=book&qty=2&note=%C3%A9+%26+more")},
		{"multipart", http.MethodPost, mpType, mpBody},
		{"json put", http.MethodPut, "application/json", []byte(`{"order":42,"items":["a","b"]}`)},
		{"binary patch", http.MethodPatch, "application/octet-stream", binary},
		{"empty delete", http.MethodDelete, "", nil},
		{"empty post", http.MethodPost, "application/x-www-form-urlencoded", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			fields := b.SubmitWhileLoggedOut(tc.method, "/checkout?step=2&x=%2F", tc.ctype, tc.body)
			if n := len(e.up.Requests()); n != 0 {
				t.Fatalf("upstream saw %d requests before login, want 0", n)
			}
			resp := b.Login(fields, testUser, testPassword)
			gatewaytest.ReadBody(t, resp)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout?step=2&x=%2F" {
				t.Fatalf("after login: %d Location %q, want 303 to the original URL", resp.StatusCode, resp.Header.Get("Location"))
			}
			got := e.up.Submissions()
			if len(got) != 1 {
				t.Fatalf("upstream received %d submissions, want exactly 1", len(got))
			}
			r := got[0]
			if r.Method != tc.method || r.Path != "/checkout" || r.Query != "step=2&x=%2F" {
				t.Errorf("replayed %s %s?%s, want %s /checkout?step=2&x=%%2F", r.Method, r.Path, r.Query, tc.method)
			}
			if r.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", r.Header.Get("Content-Type"), tc.ctype)
			}
			if !bytes.Equal(r.Body, tc.body) {
				t.Errorf("body differs: got %d bytes sha %s, want %d bytes sha %s", len(r.Body), sha(r.Body), len(tc.body), sha(tc.body))
			}
			if r.Header.Get("X-Postern-Replayed") != "true" || r.Header.Get("X-Forwarded-User") != testUser {
				t.Errorf("identity headers: replayed=%q user=%q", r.Header.Get("X-Postern-Replayed"), r.Header.Get("X-Forwarded-User"))
			}
			for k := range r.Header {
				if k == "Cookie" && strings.Contains(r.Header.Get(k), "postern=") {
					t.Errorf("the gateway's cookie reached the upstream")
				}
			}
			// The answer is shown once at the original URL...
			page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/checkout?step=2&x=%2F", "", nil), http.StatusOK)
			if !strings.Contains(page, "app answer #1: "+tc.method) || !strings.Contains(page, "sha="+sha(tc.body)) {
				t.Fatalf("kept answer not shown at the original URL:\n%s", page)
			}
			// ...and a refresh is a plain GET, not a second submission.
			page = gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/checkout?step=2&x=%2F", "", nil), http.StatusOK)
			if !strings.Contains(page, "app answer #2: GET") {
				t.Fatalf("refresh did not reach the upstream as a GET:\n%s", page)
			}
			if n := len(e.up.Submissions()); n != 1 {
				t.Fatalf("upstream received %d submissions after refresh, want 1", n)
			}
		})
	}
}

func TestGetGoesToLoginAndBack(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp := b.Do(http.MethodGet, "/orders?page=3", "", nil)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("GET without session: %d, want 307", resp.StatusCode)
	}
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, resp.Header.Get("Location"), "", nil), http.StatusOK)
	f := gatewaytest.HiddenFields(page)
	if f.Get("rd") != "/orders?page=3" || f.Has("stash") {
		t.Fatalf("login page fields %v, want rd=/orders?page=3 and no stash", f)
	}
	resp = b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/orders?page=3" {
		t.Fatalf("after login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	page = gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/orders?page=3", "", nil), http.StatusOK)
	if !strings.Contains(page, "GET /orders?page=3 user=alice") {
		t.Fatalf("upstream page: %s", page)
	}
}

// Two tabs with two pending submissions: each keeps its own stash and each
// is replayed once.
func TestTwoTabsTwoStashes(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	tabA := b.SubmitWhileLoggedOut(http.MethodPost, "/cart", "application/x-www-form-urlencoded", []byte("tab=A"))
	tabB := b.SubmitWhileLoggedOut(http.MethodPost, "/profile", "application/x-www-form-urlencoded", []byte("tab=B"))
	if tabA.Get("stash") == tabB.Get("stash") {
		t.Fatal("two submissions share one stash id")
	}
	b.Follow(b.Login(tabA, testUser, testPassword), http.StatusOK)
	// Tab B's login page, reloaded now that tab A logged in, offers to send
	// its own submission.
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login?stash="+tabB.Get("stash")+"&rd=%2Fprofile", "", nil), http.StatusOK)
	if !strings.Contains(page, "Send my submission") {
		t.Fatalf("tab B after tab A's login shows no continue button:\n%s", page)
	}
	cont := gatewaytest.HiddenFields(page)
	resp := b.Do(http.MethodPost, "/.postern/resume", "application/x-www-form-urlencoded", []byte(cont.Encode()))
	b.Follow(resp, http.StatusOK)
	got := e.up.Submissions()
	if len(got) != 2 {
		t.Fatalf("upstream received %d submissions, want 2", len(got))
	}
	if string(got[0].Body) != "tab=A" || got[0].Path != "/cart" || string(got[1].Body) != "tab=B" || got[1].Path != "/profile" {
		t.Fatalf("replays: %s %q, %s %q", got[0].Path, got[0].Body, got[1].Path, got[1].Body)
	}
}

// A login form submitted twice (a double click, or Back and submit again)
// replays once, and the second answer still leads to the result.
func TestLoginSubmittedTwiceReplaysOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("order=1"))
	first := b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, first)
	second := b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, second)
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("upstream received %d submissions, want 1", n)
	}
	// The browser shows the second answer: it too leads to the result.
	if second.StatusCode != http.StatusSeeOther || second.Header.Get("Location") != "/checkout" {
		t.Fatalf("second login submit: %d %q, want 303 /checkout", second.StatusCode, second.Header.Get("Location"))
	}
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/checkout", "", nil), http.StatusOK)
	if !strings.Contains(page, "app answer #1: POST") {
		t.Fatalf("result after double submit:\n%s", page)
	}
	// Once more, after the answer was shown (Back to the login page and
	// submit again): it says the submission was sent once, at once, rather
	// than waiting for an answer that will not come.
	third := b.Login(f, testUser, testPassword)
	b.Client.Timeout = 10 * time.Second // far below the 30 s a waiting page would take
	if third.StatusCode != http.StatusGone {
		t.Fatalf("third submit: %d, want 410 saying it was sent", third.StatusCode)
	}
	page = gatewaytest.ReadBody(t, third)
	if !strings.Contains(page, "reached the application once") {
		t.Fatalf("third submit:\n%s", page)
	}
	if n := len(e.up.Submissions()); n != 1 {
		t.Fatalf("upstream received %d submissions, want 1", n)
	}
}

// Many completions racing on one stash (double clicks, tabs, replicas)
// replay it exactly once.
func TestConcurrentCompletionsReplayOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/pay", "application/x-www-form-urlencoded", []byte("amount=100"))
	// Log in through a GET-only path, keeping the stash pending.
	g := url.Values{"csrf": {f.Get("csrf")}, "rd": {"/"}}
	resp := b.Login(g, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	page := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/login?stash="+f.Get("stash")+"&rd=%2Fpay", "", nil), http.StatusOK)
	cont := []byte(gatewaytest.HiddenFields(page).Encode())

	const n = 50
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.Do(http.MethodPost, "/.postern/resume", "application/x-www-form-urlencoded", cont)
			r.Body.Close()
			statuses[i] = r.StatusCode
		}()
	}
	wg.Wait()
	if got := len(e.up.Submissions()); got != 1 {
		t.Fatalf("%d racing completions replayed %d times, want 1 (statuses %v)", n, got, statuses)
	}
	for i, s := range statuses {
		if s != http.StatusSeeOther {
			t.Errorf("completion %d answered %d, want 303 to the result", i, s)
		}
	}
}

func TestLargeMultipartByteForByte(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	ctype, body := multipartBody(t, 5<<20)
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/upload", ctype, body)
	b.Follow(b.Login(f, testUser, testPassword), http.StatusOK)
	got := e.up.Submissions()
	if len(got) != 1 || !bytes.Equal(got[0].Body, body) {
		t.Fatalf("5 MiB multipart not preserved: %d submissions", len(got))
	}
}

// A stash survives a restart of the gateway on the embedded store.
func TestStashSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/json", []byte(`{"keep":"me"}`))
	e.stop()
	e.start() // on the same address: b goes on with the same base
	b.Follow(b.Login(f, testUser, testPassword), http.StatusOK)
	got := e.up.Submissions()
	if len(got) != 1 || string(got[0].Body) != `{"keep":"me"}` {
		t.Fatalf("after restart: %d submissions", len(got))
	}
}
