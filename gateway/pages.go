package gateway

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages renders the pages a person sees: login, continue, logout, errors.
type pages struct {
	t     *template.Template
	brand string
}

// pageData is everything a page may show. Every field is escaped by
// html/template. docs/templates.md documents each field for operators who
// write their own templates (--templates-dir): keep the two in step.
type pageData struct {
	Brand    string // the organisation's name (--brand-name); set by render
	Title    string // the page's title, e.g. "Log in"; set by render
	CSRF     string
	Stash    string
	Pending  string // what is waiting, e.g. "POST /checkout"; empty if unknown
	Return   string
	User     string
	Username string
	Error    any // string for the login page, *httpError for error pages
	LoggedIn bool
	SSO      string    // link that starts the OIDC login, when configured
	Sent     *sentData // the ambiguous page: what was handed to the app, and when
	// RequestID is the request's X-Request-Id, shown on error pages so a
	// person can quote it and an operator find the request in the log.
	RequestID string
}

// pageTitles are the pages' titles; an error page's is its error's.
var pageTitles = map[string]string{
	"login": "Log in", "continue": "Continue", "logout": "Log out", "loggedout": "Logged out",
	"sending": "Being sent", "ambiguous": "Was it received?", "discarded": "Discarded",
}

// defaultBrand is the name on the pages when no --brand-name is set.
const defaultBrand = "postern"

// newPages parses the embedded page templates and then, when dir is set,
// the operator's own from dir: a file there named like an embedded one
// (login.html, layout.html, ...) replaces it, the others stay. A missing
// dir, an unknown file name or a template that does not parse or render is
// an error naming the file.
func newPages(brand, dir string) (*pages, error) {
	if brand == "" {
		brand = defaultBrand
	}
	t, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parsing page templates: %w", err)
	}
	p := &pages{t: t, brand: brand}
	if dir == "" {
		return p, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err // names the directory and why
	}
	known, _ := fs.Glob(templateFS, "templates/*.html")
	for i := range known {
		known[i] = path.Base(known[i])
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || filepath.Ext(name) != ".html" {
			continue
		}
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("%s: %s is not one of the gateway's templates (%s)", dir, name, strings.Join(known, ", "))
		}
		text, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if _, err := t.New(name).Parse(string(text)); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	// Every page must render with the data it will get, now rather than in
	// front of a person.
	for _, name := range known {
		if name == "layout.html" {
			continue
		}
		if err := t.ExecuteTemplate(io.Discard, name, p.sample(strings.TrimSuffix(name, ".html"))); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return p, nil
}

// sample is the data a page is checked with at start: every field set.
func (p *pages) sample(name string) pageData {
	d := pageData{CSRF: "csrf", Stash: "stash", Pending: "POST /checkout", Return: "/checkout", User: "alice",
		Username: "alice", LoggedIn: true, SSO: "/.postern/login?sso=1", Error: "Wrong username or password.",
		RequestID: "0217457eb06f055e-1"}
	switch name {
	case "error":
		d.Error = &httpError{Status: 400, Code: "sample", Title: "Sample", Message: "A sample error.",
			BackURL: "/", RetryStash: "stash", Login: "/.postern/login"}
	case "ambiguous":
		d.Error = "Your submission was handed to the application, and the gateway did not hear back."
		d.Sent = &sentData{Method: "POST", Path: "/checkout", At: "2026-12-02 01:02:03 UTC", Ago: "20 seconds", Attempts: 1}
	}
	return p.complete(name, d)
}

// complete fills in what every page shows: the brand and the title.
func (p *pages) complete(name string, d pageData) pageData {
	d.Brand, d.Title = p.brand, pageTitles[name]
	if he, ok := d.Error.(*httpError); ok && name == "error" {
		d.Title = he.Title
	}
	return d
}

// render writes page name with status. Pages are never cached, and may not
// be framed (clickjacking of the login form).
func (p *pages) render(w http.ResponseWriter, status int, name string, data pageData) {
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, name+".html", p.complete(name, data)); err != nil {
		// Templates are fixed and tested; this is a bug, not input.
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// formatBytes renders a byte count for people: 10 MiB, 512 KiB, 300 bytes.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.3g MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.3g KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// formatDuration renders a duration for people: 10 minutes, 1 hour, 90 seconds.
func formatDuration(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return fmt.Sprintf("%d %ss", n, name)
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return unit(int64(d.Round(time.Second)/time.Second), "second")
}

// CheckTemplates loads the page templates of dir as the gateway would at
// start, so a configuration check reports what start-up would refuse.
func CheckTemplates(dir string) error {
	_, err := newPages("", dir)
	return err
}
