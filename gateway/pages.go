package gateway

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages renders the pages a person sees: login, continue, logout, errors.
type pages struct {
	t *template.Template
}

// pageData is everything a page may show. Every field is escaped by
// html/template.
type pageData struct {
	CSRF     string
	Stash    string
	Return   string
	User     string
	Username string
	Error    any // string for the login page, *httpError for error pages
	LoggedIn bool
	SSO      string // link that starts the OIDC login, when configured
}

func newPages() (*pages, error) {
	t, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parsing page templates: %w", err)
	}
	return &pages{t: t}, nil
}

// render writes page name with status. Pages are never cached, and may not
// be framed (clickjacking of the login form).
func (p *pages) render(w http.ResponseWriter, status int, name string, data pageData) {
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, name+".html", data); err != nil {
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
