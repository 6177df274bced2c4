package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/postern/postern/session"
)

// statusClientClosed is logged (not seen) for requests whose client went
// away, as nginx does.
const statusClientClosed = 499

// httpError is an error with the answer a person or client should get. Its
// Title and Message are public; Cause is for the log only.
type httpError struct {
	Status  int
	Code    string // short machine-readable reason, for JSON answers
	Title   string
	Message string
	Cause   error
	// Optional extras for the page.
	BackURL    string        // "go back" link, same-origin
	RetryStash string        // offer a retry of this stash (upstream refused)
	RetryAfter time.Duration // for 429
	Login      string        // offer a login link (a gateway login URL)
	Challenge  string        // WWW-Authenticate value, for 401
}

func (e *httpError) Error() string {
	if e.Cause != nil {
		return e.Title + ": " + e.Cause.Error()
	}
	return e.Title
}

func (e *httpError) Unwrap() error { return e.Cause }

// storeError turns a store failure into the answer for it: an unreachable
// store fails closed with 503.
func storeError(err error) *httpError {
	if errors.Is(err, context.Canceled) {
		// The client went away; nobody reads this answer.
		return &httpError{Status: statusClientClosed, Code: "client_closed", Title: "Request cancelled",
			Message: "The request was cancelled.", Cause: err}
	}
	if errors.Is(err, session.ErrUnavailable) {
		// The log carries the cause (down, out of memory, read-only...);
		// the person only needs to know it is passing.
		return &httpError{
			Status:  http.StatusServiceUnavailable,
			Code:    "store_unavailable",
			Title:   "Temporarily unavailable",
			Message: "The gateway cannot reach its store right now. Nothing you sent was kept; please try again in a moment.",
			Cause:   err,
		}
	}
	return &httpError{
		Status:  http.StatusInternalServerError,
		Code:    "internal",
		Title:   "Something went wrong",
		Message: "The gateway could not complete this request.",
		Cause:   err,
	}
}

// handlerFunc is a gateway handler: it answers the request, or returns the
// error that handle turns into the answer (tailscale tsweb's
// ReturnHandler), so a handler does not repeat "fail, then return" after
// every step.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc to http.Handler: its error goes to fail.
func (g *Gateway) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			g.fail(w, r, err)
		}
	}
}

// fail is the one place that turns an error into an HTTP answer: a page for
// a person's browser, JSON for anything else. Internal details never reach
// the client; server-side failures are logged with their cause.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = storeError(err)
	}
	if he.Status >= 500 && he.Status != statusClientClosed {
		g.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", he.Status), slog.String("error", he.Error()))
	} else {
		g.log.LogAttrs(r.Context(), slog.LevelDebug, "request refused",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", he.Status), slog.String("reason", he.Code))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if he.Challenge != "" {
		h.Set("WWW-Authenticate", he.Challenge)
	}
	if he.RetryAfter > 0 {
		h.Set("Retry-After", retryAfter(he.RetryAfter))
	}
	if !wantsHTML(r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(he.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": he.Code, "message": he.Message, "request_id": requestIDFrom(r.Context())})
		return
	}
	g.pages.render(w, he.Status, "error", pageData{Error: he, CSRF: csrfFrom(r), RequestID: requestIDFrom(r.Context())})
}
