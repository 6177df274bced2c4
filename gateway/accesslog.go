package gateway

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// accessWriter records the status and size of an answer for the access
// log. Unwrap lets http.ResponseController (which ReverseProxy uses to
// flush streamed answers and to hijack for WebSocket upgrades) reach the
// server's writer; Flush and Hijack serve code that asserts the
// interfaces directly.
type accessWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *accessWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *accessWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap is for http.ResponseController.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush sends what is buffered to the client (streamed answers).
func (w *accessWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over (WebSocket upgrades).
func (w *accessWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

var (
	_ http.Flusher  = (*accessWriter)(nil)
	_ http.Hijacker = (*accessWriter)(nil)
)

// logAccess writes the access line of a request: one per request, at level
// info. Never the query string, a cookie, a token or a body.
func (g *Gateway) logAccess(ctx context.Context, r *http.Request, st *requestState, w *accessWriter, outcome string, elapsed time.Duration) {
	status := w.status
	if status == 0 {
		status = http.StatusOK // nothing written: the server answers 200
	}
	user := "-"
	if st.who != nil {
		user = st.who.rec.User
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "access",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", elapsed),
		slog.String("user", user),
		slog.String("route", g.routeName(st.route)),
		slog.String("outcome", outcome),
		slog.String("client", g.clientAddr(r)))
}

// routeName names route i for the log: its host and path prefix, "*" for a
// route that matches everything, "-" for none.
func (g *Gateway) routeName(i int) string {
	if i < 0 || i >= len(g.opts.Routes) {
		return "-"
	}
	rt := &g.opts.Routes[i]
	if rt.Host == "" && (rt.PathPrefix == "" || rt.PathPrefix == "/") {
		return "*"
	}
	return rt.Host + rt.PathPrefix
}

// audit writes an audit line for what a person did at the gateway's own
// endpoints: logins, logouts, callbacks. result is "ok" or why not.
func (g *Gateway) audit(ctx context.Context, action, result string, attrs ...slog.Attr) {
	level := slog.LevelInfo
	if result != "ok" {
		level = slog.LevelWarn
	}
	g.log.LogAttrs(ctx, level, "audit", append([]slog.Attr{slog.String("action", action), slog.String("result", result)}, attrs...)...)
}
