package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// echoUpstream is an app with a WebSocket endpoint that answers each
// message with "echo <user>: <message>", the user being the identity the
// gateway passed. It accepts any Origin itself, as many apps do: the
// gateway is what must refuse a cross-site handshake.
func echoUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		user := r.Header.Get("X-Forwarded-User")
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, []byte("echo "+user+": "+string(msg))); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tokenVerifier accepts the one API token "api-token" as user "robot".
type tokenVerifier struct{}

func (tokenVerifier) Verify(_ context.Context, raw string) (auth.Identity, error) {
	if raw != "api-token" {
		return auth.Identity{}, errors.New("unknown token")
	}
	return auth.Identity{User: "robot"}, nil
}

// TestWebSocketOrigin: a WebSocket handshake that carries the session
// cookie passes through to a real WebSocket app when its Origin is the
// gateway's, and is refused with 403 when a sibling subdomain's page starts
// it (SameSite=Lax sends the cookie there too). A handshake authenticated
// by a bearer token is not affected by its Origin.
func TestWebSocketOrigin(t *testing.T) {
	ws := echoUpstream(t)
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	e.parts = func(p *gateway.Parts, o *gateway.Options) {
		u, _ := url.Parse(ws.URL)
		o.Routes[0].Upstream = u
		p.Bearer = tokenVerifier{}
	}
	e.start()
	cookie := e.loginCookie(t)
	wsURL := "ws" + strings.TrimPrefix(e.gw.URL, "http") + "/chat"
	const sibling = "http://evil.postern.test"

	dial := func(header http.Header) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: header})
	}
	talk := func(c *websocket.Conn, want string) {
		t.Helper()
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(msg) != want {
			t.Errorf("got %q, want %q", msg, want)
		}
	}

	t.Run("same origin with the cookie proxies", func(t *testing.T) {
		c, _, err := dial(http.Header{"Cookie": {cookie}, "Origin": {e.gw.URL}})
		if err != nil {
			t.Fatalf("same-origin handshake: %v", err)
		}
		talk(c, "echo "+testUser+": hi")
	})
	t.Run("sibling origin with the cookie is refused", func(t *testing.T) {
		c, resp, err := dial(http.Header{"Cookie": {cookie}, "Origin": {sibling}})
		if err == nil {
			c.CloseNow()
			t.Fatal("a handshake from a sibling subdomain's page was proxied with the person's session")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("sibling handshake: %v (response %v), want 403", err, resp)
		}
		for _, bad := range []string{"null", "https://" + strings.TrimPrefix(e.gw.URL, "http://")} {
			if c, resp, err := dial(http.Header{"Cookie": {cookie}, "Origin": {bad}}); err == nil || resp.StatusCode != http.StatusForbidden {
				if c != nil {
					c.CloseNow()
				}
				t.Errorf("handshake with Origin %q was not refused with 403", bad)
			}
		}
	})
	t.Run("bearer token from any origin proxies", func(t *testing.T) {
		c, _, err := dial(http.Header{"Authorization": {"Bearer api-token"}, "Origin": {sibling}})
		if err != nil {
			t.Fatalf("bearer handshake: %v", err)
		}
		talk(c, "echo robot: hi")
	})
}
