package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
)

// RequestIDHeader carries a request's id: to the app, in answers, and in
// every log line about the request.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds an id kept from a trusted proxy.
const maxRequestIDLen = 128

// requestIDs makes request ids: a random prefix per process and a counter,
// unique across replicas and restarts without a random read per request.
// Ids are for correlation, not secrets.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (ids *requestIDs) next() string {
	return ids.prefix + strconv.FormatUint(ids.n.Add(1), 36)
}

// requestID returns the request's id: the one a trusted proxy sent when it
// looks sane, else a new one.
func (g *Gateway) requestID(r *http.Request) string {
	if v := r.Header.Get(RequestIDHeader); v != "" && saneRequestID(v) && g.trusted(r.RemoteAddr) {
		return v
	}
	return g.ids.next()
}

// saneRequestID accepts what proxies and tracing systems send (UUIDs, hex,
// base64, "Root=1-5e1b..." of AWS): up to 128 of letters, digits and
// -_.:+/=@, so an id cannot break a log line or a header.
func saneRequestID(v string) bool {
	if len(v) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}

// requestIDFrom returns the id of the request ctx belongs to, or "".
func requestIDFrom(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return ""
}

// withRequestID adds the request id to every log line written with a
// request's context, so audit lines, refusals and failures can be matched
// with the access line, the app's log and the page the person saw.
type withRequestID struct{ slog.Handler }

func (h withRequestID) Handle(ctx context.Context, rec slog.Record) error {
	if id := requestIDFrom(ctx); id != "" {
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h withRequestID) WithAttrs(as []slog.Attr) slog.Handler {
	return withRequestID{h.Handler.WithAttrs(as)}
}

func (h withRequestID) WithGroup(name string) slog.Handler {
	return withRequestID{h.Handler.WithGroup(name)}
}
