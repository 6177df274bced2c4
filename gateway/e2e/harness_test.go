package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session/filestore"
)

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
	cookieName   = "postern"
)

// requireBinary skips the test when an external program is missing, or fails
// it under CI, where every end-to-end test must run.
func requireBinary(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("%s not found (install the Debian package %q to run this end-to-end test): %v", path, pkg, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// app stands in for the protected application: a recording upstream that
// serves a page with two forms (urlencoded and multipart) and answers their
// POSTs with a page that shows what it received and how many submissions it
// has counted.
type app struct {
	*gatewaytest.Upstream
}

func newApp(t *testing.T) *app {
	t.Helper()
	a := &app{gatewaytest.NewUpstream(t)}
	a.SetAnswer(a.serve)
	return a
}

const formPage = `<!doctype html><html><head><meta charset="utf-8"><title>Checkout</title></head><body>
<h1>Checkout</h1>
<form id="plain" method="post" action="/orders?step=confirm">
<label>Name <input id="name" name="name"></label>
<label>Comment <textarea id="comment" name="comment"></textarea></label>
<button id="send" type="submit">Place order</button>
</form>
<form id="upload" method="post" action="/upload" enctype="multipart/form-data">
<label>Title <input id="title" name="title"></label>
<input id="file" type="file" name="file">
<button id="send-file" type="submit">Upload</button>
</form>
</body></html>`

func (a *app) serve(w http.ResponseWriter, r *http.Request, got gatewaytest.Request) {
	if got.Err != nil {
		http.Error(w, "reading body: "+got.Err.Error(), http.StatusBadRequest)
		return
	}
	body := got.Body
	// The submissions up to this one, not those that arrived since.
	posts := len(gatewaytest.Submissions(a.Requests()[:got.N]))

	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	esc := html.EscapeString
	common := fmt.Sprintf(`<p>user <span id="user">%s</span>, replayed <span id="replayed">%s</span>, submissions counted <span id="count">%d</span></p>`,
		esc(r.Header.Get("X-Forwarded-User")), esc(r.Header.Get("X-Postern-Replayed")), posts)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/form":
		_, _ = io.WriteString(w, formPage)
	case r.Method == http.MethodPost && r.URL.Path == "/orders":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>Order</title><h1 id="result">Order received</h1>
<p>name <span id="got-name">%s</span></p><p>comment <pre id="got-comment">%s</pre></p>%s`,
			esc(v.Get("name")), esc(v.Get("comment")), common)
	case r.Method == http.MethodPost && r.URL.Path == "/upload":
		title, name, sum, n, err := readUpload(r.Header.Get("Content-Type"), body)
		if err != nil {
			http.Error(w, "bad upload: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>Upload</title><h1 id="result">Upload received</h1>
<p>title <span id="got-title">%s</span></p><p>file <span id="got-file">%s</span>, <span id="got-size">%d</span> bytes, sha256 <span id="got-sha">%s</span></p>%s`,
			esc(title), esc(name), n, sum, common)
	default:
		fmt.Fprintf(w, `<!doctype html><title>Page</title><h1 id="page">%s %s</h1>%s`, esc(r.Method), esc(r.URL.RequestURI()), common)
	}
}

// readUpload returns the title field and the file part's name, SHA-256 and
// size of a multipart body.
func readUpload(contentType string, body []byte) (title, name, sum string, size int64, err error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", "", "", 0, err
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return title, name, sum, size, nil
		}
		if err != nil {
			return "", "", "", 0, err
		}
		switch p.FormName() {
		case "title":
			b, err := io.ReadAll(p)
			if err != nil {
				return "", "", "", 0, err
			}
			title = string(b)
		case "file":
			h := sha256.New()
			if size, err = io.Copy(h, p); err != nil {
				return "", "", "", 0, err
			}
			name, sum = p.FileName(), hex.EncodeToString(h.Sum(nil))
		}
	}
}

// startGateway runs a gateway with its real parts (file store in a temporary
// folder, sealed cookies, an htpasswd user) in front of upstream, on a real
// listener, and returns its URL. publicURL is the address browsers use;
// empty means the gateway's own. opts adjust the gateway's settings.
func startGateway(t *testing.T, upstream, publicURL string, opts ...func(*gateway.Options)) string {
	t.Helper()
	secret := bytes.Repeat([]byte("e2e-secret-"), 4)
	backend, err := filestore.Open(filepath.Join(t.TempDir(), "postern.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The listener comes first: the public URL may be the gateway's own.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := "http://" + l.Addr().String()
	if publicURL == "" {
		publicURL = self
	}
	parts := gatewaytest.Parts(t, backend, [][]byte{secret}, cookieName, testUser, testPassword)
	parts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	o := gatewaytest.Options(t, publicURL, upstream)
	for _, f := range opts {
		f(&o)
	}
	g, err := gateway.New(o, parts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		_ = backend.Close()
	})
	return self
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// onlySubmission returns the only submission the app received, failing the
// test if there is not exactly one.
func onlySubmission(t *testing.T, a *app) gatewaytest.Request {
	t.Helper()
	subs := a.Submissions()
	if len(subs) != 1 {
		var got []string
		for _, s := range subs {
			got = append(got, s.Method+" "+s.URI+" replayed="+s.Header.Get("X-Postern-Replayed"))
		}
		t.Fatalf("app received %d submissions, want exactly 1: %s", len(subs), strings.Join(got, "; "))
	}
	return subs[0]
}

// expectReplayedBy checks that a submission came as the gateway's replay,
// on behalf of the test user.
func expectReplayedBy(t *testing.T, h gatewaytest.Request) {
	t.Helper()
	if got := h.Header.Values("X-Postern-Replayed"); len(got) != 1 || got[0] != "true" {
		t.Errorf("submission X-Postern-Replayed = %q, want [true]", got)
	}
	if got := h.Header.Values("X-Forwarded-User"); len(got) != 1 || got[0] != testUser {
		t.Errorf("submission X-Forwarded-User = %q, want [%s]", got, testUser)
	}
	for _, c := range h.Header.Values("Cookie") {
		if strings.Contains(c, cookieName+"=") {
			t.Errorf("the gateway's cookie reached the app: %q", c)
		}
	}
}
