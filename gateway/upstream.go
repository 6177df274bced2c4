package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"
)

// socketHost is the host name requests to a unix socket upstream are
// addressed to; the socket is what the transport dials, and the app gets
// the Host the client asked for.
const socketHost = "localhost"

// resolveUpstream works out, once, how requests reach a route's upstream:
// the URL they are rewritten to, the transport that carries them (the
// gateway's, or one of the route's own for a private CA or a unix socket),
// and whether the client's Host is kept (a socket has no host name of its
// own, so the app sees the name it is reached by, as behind nginx).
func resolveUpstream(rt *Route, transport http.RoundTripper) error {
	u := rt.Upstream
	rt.target, rt.transport = u, transport
	socket := ""
	switch {
	case u == nil:
		return errors.New("no upstream")
	case u.Scheme == "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return fmt.Errorf("upstream %q: a unix socket is unix:// and an absolute path, e.g. unix:///run/app.sock", u)
		}
		socket = filepath.Clean(u.Path)
		rt.target = &url.URL{Scheme: "http", Host: socketHost}
		rt.keepHost = true
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("upstream %q: want http://, https:// or unix://", u.Redacted())
	}
	if socket == "" && rt.RootCAs == nil {
		return nil
	}
	base, ok := transport.(*http.Transport)
	if !ok {
		base = NewTransport()
	}
	t := base.Clone()
	if rt.RootCAs != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: rt.RootCAs, MinVersion: tls.VersionTLS12}
	}
	if socket != "" {
		d := &net.Dialer{Timeout: 5 * time.Second}
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		}
		// Plain HTTP/1.1 over the socket.
		t.ForceAttemptHTTP2 = false
	}
	rt.transport = t
	return nil
}
