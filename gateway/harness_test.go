package gateway_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
)

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

var testSecret = bytes.Repeat([]byte("k"), 32)

// env is a gateway listening on a real port, in front of an upstream.
type env struct {
	t         testing.TB
	transport http.RoundTripper // nil: the gateway's own
	// parts, if set, adjusts the gateway's parts once its public URL is known.
	parts    func(p *gateway.Parts, o *gateway.Options)
	up       *gatewaytest.Upstream
	gw       *httptest.Server
	storeDir string
	addr     string
	backend  session.Backend
	// secrets are the cookie secrets, newest first; nil: testSecret.
	secrets [][]byte
	// openBackend opens the store; nil: the file store in storeDir.
	openBackend func() session.Backend
	opts        gateway.Options
}

type envOption func(*gateway.Options)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	e.start(opts...)
	return e
}

// start (re)starts the gateway on the env's store directory.
func (e *env) start(opts ...envOption) {
	t := e.t
	t.Helper()
	var backend session.Backend
	if e.openBackend != nil {
		backend = e.openBackend()
	} else {
		fs, err := filestore.Open(filepath.Join(e.storeDir, "postern.db"))
		if err != nil {
			t.Fatal(err)
		}
		backend = fs
	}
	e.backend = backend
	secrets := e.secrets
	if secrets == nil {
		secrets = [][]byte{testSecret}
	}
	// The public URL is known only once the listener exists.
	var h http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	if e.addr != "" {
		// A restart listens where the gateway was, as a real one would.
		srv.Listener.Close()
		l, err := net.Listen("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = l
	}
	srv.Start()
	e.addr = srv.Listener.Addr().String()
	o := gatewaytest.Options(t, srv.URL, e.up.URL)
	for _, f := range opts {
		f(&o)
	}
	parts := gatewaytest.Parts(t, backend, secrets, "postern", testUser, testPassword)
	parts.Transport = e.transport
	parts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if e.parts != nil {
		e.parts(&parts, &o)
	}
	e.opts = o
	g, err := gateway.New(o, parts)
	if err != nil {
		t.Fatal(err)
	}
	h = g
	e.gw = srv
	t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.gw != nil {
		e.gw.Close()
		e.gw = nil
	}
	if e.backend != nil {
		_ = e.backend.Close()
		e.backend = nil
	}
}

// browser is a gatewaytest.Browser for the env's gateway.
func (e *env) browser() *gatewaytest.Browser {
	return gatewaytest.NewBrowser(e.t, e.gw.URL)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// newBenchEnv is an env whose gateway uses transport to reach the upstream.
func newBenchEnv(tb testing.TB, transport http.RoundTripper) *env {
	e := &env{t: tb, up: gatewaytest.NewUpstream(tb), storeDir: tb.TempDir(), transport: transport}
	e.up.SetAnswer(func(w http.ResponseWriter, _ *http.Request, _ gatewaytest.Request) { _, _ = w.Write([]byte("ok")) })
	e.start()
	return e
}

// loginCookie logs a browser in and returns its Cookie header.
func (e *env) loginCookie(tb testing.TB) string {
	b := e.browser()
	lp := gatewaytest.ExpectStatus(tb, b.Do(http.MethodGet, "/.postern/login", "", nil), http.StatusOK)
	gatewaytest.ReadBody(tb, b.Login(gatewaytest.HiddenFields(lp), testUser, testPassword))
	u, _ := url.Parse(e.gw.URL)
	var parts []string
	for _, c := range b.Client.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}
