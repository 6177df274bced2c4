package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// browserTimeout bounds each browser test as a whole, browser start included.
const browserTimeout = 60 * time.Second

// browser is one fresh Chromium (its own profile folder) with one tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	requireBinary(t, chromiumPath, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1000, 800),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		// Every request goes straight to 127.0.0.1, whatever the
		// environment says about proxies.
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("password-store", "basic"),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	b := &browser{t: t, ctx: ctx}
	b.do("start Chromium") // the first Run starts the browser
	return b
}

// do runs steps, failing the test with what it was doing.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v (page: %s)", what, err, b.peek())
	}
}

// peek describes the current page for failure messages, best effort.
func (b *browser) peek() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " :: " + document.body.innerText.slice(0, 400)`))
	if err != nil {
		return "unknown: " + err.Error()
	}
	return s
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).textContent`, sel)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v (page: %s)", sel, err, b.peek())
	}
	return s
}

func (b *browser) location() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("browser: location: %v", err)
	}
	return s
}

// status is the HTTP status of the current document, as the page's own
// navigation timing reports it.
func (b *browser) status() int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`performance.getEntriesByType("navigation")[0].responseStatus`))
	if err != nil {
		b.t.Fatalf("browser: status of the page: %v", err)
	}
	return n
}

// waitFor waits until the page shows one of the selectors, and fails unless
// it is want. Waiting for the alternatives at once makes a broken flow fail
// at once, with the page it reached, not at the timeout.
//
// It asks the page itself rather than chromedp's DOM queries, which lose
// track of a document that Back restores from the back/forward cache.
func (b *browser) waitFor(want string, otherwise ...string) {
	b.t.Helper()
	all := append([]string{want}, otherwise...)
	js := fmt.Sprintf(`(() => {
		if (document.readyState === "loading") return "";
		for (const sel of %s) {
			const el = document.querySelector(sel);
			if (el && el.getClientRects().length > 0) return sel;
		}
		return "";
	})()`, jsStrings(all))
	// Bounded in count and by the test's context.
	for range 2000 {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		cancel()
		switch {
		case err == nil && got == want:
			return
		case err == nil && got != "":
			b.t.Fatalf("browser: waiting for %s, the page shows %s instead: %s", want, got, b.peek())
		case b.ctx.Err() != nil:
			b.t.Fatalf("browser: waiting for %s: %v", want, b.ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.t.Fatalf("browser: %s never appeared (page: %s)", want, b.peek())
}

func jsStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// screenshot keeps a picture of the page in the test's temporary folder and,
// when POSTERN_E2E_SCREENSHOTS names a folder, there too.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	dirs := []string{b.t.TempDir()}
	if d := os.Getenv("POSTERN_E2E_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, b.t.Name()+"-"+name+".png")
		p = filepath.Join(d, strings.NewReplacer("/", "_").Replace(filepath.Base(p)))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			b.t.Errorf("writing screenshot: %v", err)
		}
	}
}

// submit runs steps that end in a click which leaves the page (a form
// submission, a link), and waits until another document has replaced the
// current one, so that what is checked next is the new page.
func (b *browser) submit(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.__posternOld = true`)); err != nil {
		b.t.Fatalf("browser: marking the page before %s: %v", what, err)
	}
	b.do(what, steps...)
	// Bounded in count and by the test's context; each try is short because
	// a navigation may swallow it.
	for range 1000 {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__posternOld !== true && document.readyState !== "loading"`))
		cancel()
		if err == nil && gone {
			return
		}
		if b.ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.t.Fatalf("browser: %s: the page did not change (page: %s)", what, b.peek())
}

// back goes one step back in the history without waiting for a load event,
// which a page restored from the back/forward cache does not fire.
func (b *browser) back() {
	b.t.Helper()
	b.do("back", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		h, err := cdp.Call(ctx, t, page.GetNavigationHistory, cdp.Empty{})
		if err != nil {
			return err
		}
		if h.CurrentIndex < 1 {
			return errors.New("no history to go back to")
		}
		_, err = cdp.Call(ctx, t, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: h.Entries[h.CurrentIndex-1].ID})
		return err
	}))
}

// logIn fills and sends the gateway's login form on the current page.
func (b *browser) logIn() {
	b.t.Helper()
	b.submit("log in",
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), testUser),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.CSS(`form[action="/.postern/login"] button[type=submit]`)),
	)
}

// expireSession deletes the gateway's cookie, as if the session had expired
// while the person was typing: the next submission arrives without one.
func (b *browser) expireSession(gw string) {
	b.t.Helper()
	b.do("delete the gateway's cookie", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.DeleteCookies, network.DeleteCookiesParams{Name: cookieName, URL: gw + "/"})
		return err
	}))
	left, err := chromedp.Run(b.ctx, func(ctx context.Context, t *chromedp.Target) (int, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{gw + "/"}})
		return len(res.Cookies), err
	})
	if err != nil || left != 0 {
		b.t.Fatalf("browser: after deleting, %d cookies left for the gateway (%v)", left, err)
	}
}

// openFormLoggedIn logs in through the gateway and lands on the app's form.
func (b *browser) openFormLoggedIn(gw string) {
	b.t.Helper()
	b.do("open the form", chromedp.Navigate(gw+"/form"))
	b.waitFor("#username", "#plain")
	if strings.Contains(b.text("body"), "Your submission is kept") {
		b.t.Fatal("a plain page load was announced as a kept submission")
	}
	b.logIn()
	b.waitFor("#plain", "p.error")
	if got := b.location(); got != gw+"/form" {
		b.t.Fatalf("after the first login the browser is at %s, want %s", got, gw+"/form")
	}
}

// expectKeptNote checks that the browser is on the login page that promises
// to keep the submission.
func (b *browser) expectKeptNote() {
	b.t.Helper()
	b.waitFor("#pending", "p.error", "#result")
	if note := b.text("#pending"); !strings.Contains(note, "Your submission is kept") {
		b.t.Fatalf("login page note = %q, want it to say the submission is kept", note)
	}
	if !strings.Contains(b.location(), "/.postern/login") {
		b.t.Fatalf("the kept note is shown at %s, not at the gateway's login", b.location())
	}
}

// TestBrowserSubmissionSurvivesExpiredSession is the product's promise in a
// real browser: a form sent after the session expired leads to the login,
// and after it the person sees the app's answer to what they typed, at the
// URL they sent it to; the app got it once. A refresh and Back send nothing.
func TestBrowserSubmissionSurvivesExpiredSession(t *testing.T) {
	a := newApp(t)
	gw := startGateway(t, a.URL, "")
	b := newBrowser(t)
	docs := b.recordDocuments()

	b.openFormLoggedIn(gw)
	b.expireSession(gw)
	const name = "Zoë & Co = 100% +1"
	const comment = "first line\nsecond line: <b>not bold</b>"
	b.submit("fill and send the form",
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.SetValue(chromedp.ID("comment"), comment),
		chromedp.Click(chromedp.ID("send")),
	)
	b.expectKeptNote()
	b.screenshot("login-kept")
	if n := len(a.Submissions()); n != 0 {
		t.Fatalf("app received %d submissions before the login", n)
	}

	b.logIn()
	b.waitFor("#result", "p.error", "#pending")
	b.screenshot("result")
	if got := b.status(); got != http.StatusOK {
		t.Errorf("result page has status %d, want the app's 200", got)
	}
	want := gw + "/orders?step=confirm"
	if got := b.location(); got != want {
		t.Errorf("after the login the browser is at %s, want the form's action %s", got, want)
	}
	if got := b.text("#got-name"); got != name {
		t.Errorf("page shows name %q, want %q", got, name)
	}
	if got := b.text("#got-comment"); got != comment {
		t.Errorf("page shows comment %q, want %q", got, comment)
	}
	if got := b.text("#count"); got != "1" {
		t.Errorf("page shows %s submissions counted, want 1", got)
	}
	sub := onlySubmission(t, a)
	expectReplayedBy(t, sub)
	if sub.URI != "/orders?step=confirm" {
		t.Errorf("submission went to %s", sub.URI)
	}
	form, err := url.ParseQuery(string(sub.Body))
	if err != nil {
		t.Fatal(err)
	}
	// A browser sends line breaks in form fields as CRLF.
	if got, want := form.Get("comment"), strings.ReplaceAll(comment, "\n", "\r\n"); got != want || form.Get("name") != name {
		t.Errorf("app received name %q comment %q, want %q %q", form.Get("name"), got, name, want)
	}

	t.Run("refresh sends nothing", func(t *testing.T) {
		b.t = t
		b.do("reload", chromedp.Reload())
		b.waitFor("#page", "#result", "p.error")
		if got := b.text("#page"); got != "GET /orders?step=confirm" {
			t.Errorf("after reload the page is %q, want the app's GET page", got)
		}
		onlySubmission(t, a)
	})
	t.Run("back sends nothing", func(t *testing.T) {
		b.t = t
		// Every entry of the history is a page fetched with GET: the login
		// answered the 307'd POST with a 303 to itself, so Back and
		// Refresh never have a form to send again.
		b.expectHistoryOfGETs(docs)
		// Back goes to the entry before the result: the login page, a GET.
		// Chromium loads it again without asking (an entry made by a POST
		// would fail with ERR_CACHE_MISS, "Confirm Form Resubmission").
		// The submission is settled, so the login sends the browser on to
		// the page it was submitted to, now a plain GET of the app.
		if err := chromedp.Do(b.ctx, chromedp.NavigateBack()); err != nil {
			t.Fatalf("back: %v (page: %s)", err, b.peek())
		}
		b.waitFor("#page", "#result", "p.error", "#username")
		if page := b.peek(); strings.Contains(page, "Confirm Form Resubmission") {
			t.Fatalf("back asks to resubmit a form: %s", page)
		}
		if got := b.text("#page"); got != "GET /orders?step=confirm" {
			t.Errorf("after back the page is %q, want the app's GET page", got)
		}
		onlySubmission(t, a)
		// One more step back is the form, as the person left it.
		b.back()
		b.waitFor("#plain", "p.error", "#username")
		if got := b.location(); got != gw+"/form" {
			t.Errorf("two steps back the browser is at %s, want the form", got)
		}
		onlySubmission(t, a)
		b.expectHistoryOfGETs(docs)
	})
}

// documents records the method and URL of every document request the tab
// makes, redirect hops included.
type documents struct {
	mu   sync.Mutex
	reqs [][2]string // method, URL
}

// recordDocuments starts recording the tab's document requests.
func (b *browser) recordDocuments() *documents {
	b.t.Helper()
	d := &documents{}
	err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Type == network.ResourceTypeDocument && e.Request != nil {
			d.mu.Lock()
			d.reqs = append(d.reqs, [2]string{e.Request.Method, e.Request.URL})
			d.mu.Unlock()
		}
	})
	if err != nil {
		b.t.Fatalf("browser: listening for requests: %v", err)
	}
	return d
}

// lastMethod is the method of the last document request to url.
func (d *documents) lastMethod(url string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.reqs) - 1; i >= 0; i-- {
		if d.reqs[i][1] == url {
			return d.reqs[i][0]
		}
	}
	return ""
}

// expectHistoryOfGETs checks that every entry of the tab's history (on the
// gateway's pages and the app's) shows a document fetched with GET, so
// that no Back or Refresh offers to send a form again.
func (b *browser) expectHistoryOfGETs(d *documents) {
	b.t.Helper()
	entries, err := chromedp.Run(b.ctx, func(ctx context.Context, t *chromedp.Target) ([]*page.NavigationEntry, error) {
		h, err := cdp.Call(ctx, t, page.GetNavigationHistory, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		return h.Entries, nil
	})
	if err != nil {
		b.t.Fatalf("browser: history: %v", err)
	}
	checked := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.URL, "http") {
			continue // about:blank
		}
		checked++
		if m := d.lastMethod(e.URL); m != http.MethodGet {
			b.t.Errorf("history entry %s was fetched with %q, want GET", e.URL, m)
		}
	}
	if checked < 3 {
		b.t.Errorf("history has %d entries of the flow, want the form, the login and the result", checked)
	}
}

// TestBrowserMultipartUploadSurvivesExpiredSession sends a 1 MiB file after
// the session expired; the app receives it byte for byte, once.
func TestBrowserMultipartUploadSurvivesExpiredSession(t *testing.T) {
	a := newApp(t)
	gw := startGateway(t, a.URL, "")
	data := make([]byte, 1<<20+123)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "scan.bin")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)

	b.openFormLoggedIn(gw)
	b.expireSession(gw)
	b.submit("fill and send the upload",
		chromedp.SendKeys(chromedp.ID("title"), "quarterly scan"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		chromedp.Click(chromedp.ID("send-file")),
	)
	b.expectKeptNote()
	b.logIn()
	b.waitFor("#result", "p.error", "#pending")
	if got, want := b.location(), gw+"/upload"; got != want {
		t.Errorf("after the login the browser is at %s, want %s", got, want)
	}
	if got, want := b.text("#got-sha"), shaHex(data); got != want {
		t.Errorf("app saw a file with sha256 %s (%s bytes), want %s (%d bytes)", got, b.text("#got-size"), want, len(data))
	}
	if got := b.text("#got-title"); got != "quarterly scan" {
		t.Errorf("app saw title %q", got)
	}
	sub := onlySubmission(t, a)
	expectReplayedBy(t, sub)
	_, fileName, sum, _, err := readUpload(sub.Header.Get("Content-Type"), sub.Body)
	if err != nil {
		t.Fatalf("app's recorded upload: %v", err)
	}
	if sum != shaHex(data) || fileName != "scan.bin" {
		t.Errorf("recorded upload: file %q sha256 %s, want scan.bin %s", fileName, sum, shaHex(data))
	}
}

// TestBrowserCrossSiteSubmissionIsDropped: a page of another origin that
// sends a form to the gateway while the person is logged out gets the 403
// page, and logging in afterwards never delivers the forged submission.
func TestBrowserCrossSiteSubmissionIsDropped(t *testing.T) {
	a := newApp(t)
	gw := startGateway(t, a.URL, "")
	// Another port on 127.0.0.1 is another origin. Chromium calls it
	// same-site (ports do not count for sites), so this exercises the
	// Origin rule of the gateway rather than Sec-Fetch-Site: cross-site.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Win a prize</title>
<form id="f" method="post" action="%s/orders?step=confirm"><input name="name" value="mallory"><input name="comment" value="forged"></form>
<script>document.getElementById("f").submit()</script>`, gw)
	}))
	t.Cleanup(evil.Close)
	b := newBrowser(t)

	b.do("open the other site", chromedp.Navigate(evil.URL))
	b.waitFor("p.error", "#pending", "#result")
	if msg := b.text("p.error"); !strings.Contains(msg, "another site") {
		t.Fatalf("refusal page says %q, want it to mention another site", msg)
	}
	if got := b.location(); !strings.HasPrefix(got, gw+"/") {
		t.Errorf("refusal page is at %s, want the gateway", got)
	}
	if got := b.status(); got != http.StatusForbidden {
		t.Errorf("refusal page has status %d, want 403", got)
	}
	b.screenshot("cross-site")
	if n := len(a.Submissions()); n != 0 {
		t.Fatalf("app received %d submissions from the other site", n)
	}

	// The page offers a login; taking it must not revive the submission.
	b.submit("follow the page's login link", chromedp.Click(chromedp.CSS(`a[href^="/.postern/login"]`)))
	b.waitFor("#username", "p.error")
	if strings.Contains(b.text("body"), "Your submission is kept") {
		t.Error("the login after a refused cross-site submission says it is kept")
	}
	b.logIn()
	b.waitFor("#page", "#result", "p.error")
	if n := len(a.Submissions()); n != 0 {
		t.Fatalf("app received %d submissions after the login; the forged one must be dropped", n)
	}
}
