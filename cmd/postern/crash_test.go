package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

// holdProxy is a TCP forwarder in front of the app that can hold what the
// gateway sends: while holding, it reads each new connection's bytes and
// keeps them, forwarding nothing, so a replay is in flight at the moment
// of a crash. Released, it forwards the held bytes of every other
// connection (those reached the app) and drops the rest (those never did),
// and from then on forwards everything.
type holdProxy struct {
	t    *testing.T
	l    net.Listener
	app  string
	mu   sync.Mutex
	hold bool
	held []*heldConn
	wg   sync.WaitGroup
}

type heldConn struct {
	c    net.Conn
	mu   sync.Mutex
	buf  []byte
	done chan struct{} // closed when the gateway side ended
}

func newHoldProxy(t *testing.T, app string) *holdProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{t: t, l: l, app: app}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

func (p *holdProxy) URL() string { return "http://" + p.l.Addr().String() }

func (p *holdProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		hold := p.hold
		if hold {
			h := &heldConn{c: c, done: make(chan struct{})}
			p.held = append(p.held, h)
			p.wg.Go(func() {
				defer close(h.done)
				b := make([]byte, 32<<10)
				for {
					n, err := c.Read(b)
					h.mu.Lock()
					h.buf = append(h.buf, b[:n]...)
					h.mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
		p.mu.Unlock()
		if !hold {
			p.wg.Go(func() { p.pipe(c, nil) })
		}
	}
}

// pipe forwards c to the app, prefix first.
func (p *holdProxy) pipe(c net.Conn, prefix []byte) {
	defer c.Close()
	up, err := net.Dial("tcp", p.app)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := up.Write(prefix); err != nil {
		return
	}
	go func() { _, _ = io.Copy(c, up) }()
	_, _ = io.Copy(up, c)
}

// holding reports how many held connections carried some bytes.
func (p *holdProxy) holding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, h := range p.held {
		h.mu.Lock()
		if len(h.buf) > 0 {
			n++
		}
		h.mu.Unlock()
	}
	return n
}

// release ends holding once the gateway side of every held connection has
// ended (the gateway died): every other one's bytes go to the app, the
// others are dropped.
func (p *holdProxy) release() (forwarded int) {
	p.mu.Lock()
	held := p.held
	p.hold, p.held = false, nil
	p.mu.Unlock()
	for i, h := range held {
		<-h.done
		h.mu.Lock()
		buf := h.buf
		h.mu.Unlock()
		if i%2 == 1 || len(buf) == 0 {
			h.c.Close()
			continue
		}
		forwarded++
		// The gateway is gone: the app gets the request, its answer goes
		// nowhere.
		up, err := net.Dial("tcp", p.app)
		if err == nil {
			_, _ = up.Write(buf)
			// Read the app's answer (to no one), bounded: the app keeps the
			// connection open for more requests.
			_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, up)
			up.Close()
		}
		h.c.Close()
	}
	return forwarded
}

// keyedApp is an app that honours Idempotency-Key: it acts once per key
// and answers a key it has seen with its first answer.
type keyedApp struct {
	*gatewaytest.Upstream
	mu      sync.Mutex
	acted   map[string]int    // key -> times acted (must stay 1)
	answers map[string]string // key -> the page it answered
	unkeyed int               // submissions without a key
}

func newKeyedApp(t *testing.T) *keyedApp {
	a := &keyedApp{Upstream: newRecorder(t), acted: map[string]int{}, answers: map[string]string{}}
	a.SetAnswer(func(w http.ResponseWriter, r *http.Request, got gatewaytest.Request) {
		if r.Method != http.MethodPost {
			_, _ = io.WriteString(w, "page "+r.URL.Path)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		a.mu.Lock()
		defer a.mu.Unlock()
		if key == "" {
			a.unkeyed++
			http.Error(w, "no Idempotency-Key", http.StatusBadRequest)
			return
		}
		page, seen := a.answers[key]
		if !seen {
			a.acted[key]++
			page = fmt.Sprintf("order placed: %s %s (%d)", r.URL.Path, string(got.Body), len(a.acted))
			a.answers[key] = page
		}
		_, _ = io.WriteString(w, page)
	})
	return a
}

// comeBack plays a person coming back after the crash: the login form sent
// again, then the page it leads to, reloaded while it says the submission
// is being sent; on the page that asks, "Send it again". It returns the
// page the person ends on.
func comeBack(t *testing.T, b *gatewaytest.Browser, base string, fields url.Values, path string) string {
	t.Helper()
	resp := b.At(base).Login(fields, procUser, procPassword)
	page := gatewaytest.ReadBody(t, resp)
	for range 60 { // bounded: each round is one reload, the lease lapses within 15 s
		switch {
		case resp.StatusCode == http.StatusSeeOther:
			resp = b.At(base).Do(http.MethodGet, resp.Header.Get("Location"), "", nil)
			page = gatewaytest.ReadBody(t, resp)
		case resp.StatusCode == http.StatusAccepted && strings.Contains(page, "being sent"):
			time.Sleep(500 * time.Millisecond) // the page's own Refresh
			resp = b.At(base).Do(http.MethodGet, path, "", nil)
			page = gatewaytest.ReadBody(t, resp)
		case resp.StatusCode == http.StatusConflict && strings.Contains(page, "Send it again"):
			form := gatewaytest.HiddenFields(page[strings.Index(page, `action="/.postern/resend"`):])
			resp = b.At(base).Do(http.MethodPost, "/.postern/resend", formType, []byte(form.Encode()))
			page = gatewaytest.ReadBody(t, resp)
		default:
			return page
		}
	}
	t.Fatalf("%s: still not settled after the crash: %d\n%.600s", path, resp.StatusCode, page)
	return ""
}

// TestSIGKILLDuringReplaysLosesNothing: ten replays are in flight, held
// between the gateway and the app by a TCP forwarder, when the gateway is
// killed with SIGKILL; half of them had reached the app. After a restart on
// the same store, each person comes back (sends the login form again):
// none is lost and none is acted on twice, each send carrying the
// submission's one Idempotency-Key, which the app honours.
func TestSIGKILLDuringReplaysLosesNothing(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			app := newKeyedApp(t)
			proxy := newHoldProxy(t, strings.TrimPrefix(app.URL, "http://"))
			s := newSetup(t, proxy.URL(), st.url(t))
			g := s.start(t)

			const n = 10
			browsers := make([]*gatewaytest.Browser, n)
			fields := make([]url.Values, n)
			for i := range n {
				browsers[i] = newBrowser(t)
				fields[i] = browsers[i].At(g.base).SubmitWhileLoggedOut(http.MethodPost, fmt.Sprintf("/order/%d", i), formType, fmt.Appendf(nil, "order=%d", i))
			}
			proxy.mu.Lock()
			proxy.hold = true
			proxy.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for i := range n {
				f := fields[i]
				wg.Go(func() {
					resp, err := browsers[i].Send(ctx, http.MethodPost, g.base+"/.postern/login", formType,
						strings.NewReader(loginForm(f)), -1)
					if err == nil { // the kill cuts them
						resp.Body.Close()
					}
				})
				// One login at a time (a login counts against the
				// per-address limit until its password is checked); the
				// replays stay in flight together.
				if !waitFor(30*time.Second, func() bool { return proxy.holding() == i+1 }) {
					t.Fatalf("only %d of %d replays reached the forwarder", proxy.holding(), i+1)
				}
			}
			g.kill(t)
			wg.Wait()
			forwarded := proxy.release()

			g = s.start(t)
			for i, b := range browsers {
				path := fmt.Sprintf("/order/%d", i)
				page := comeBack(t, b, g.base, fields[i], path)
				if !strings.Contains(page, "order placed: "+path+" order="+fmt.Sprint(i)) {
					t.Errorf("%s: the person ends on:\n%.600s", path, page)
				}
			}
			app.mu.Lock()
			defer app.mu.Unlock()
			twice := 0
			for k, c := range app.acted {
				if c != 1 {
					twice++
					t.Errorf("the app acted %d times on key %s", c, k)
				}
			}
			if len(app.acted) != n || app.unkeyed != 0 {
				t.Errorf("the app acted on %d keys (%d sends without a key), want the %d submissions once each", len(app.acted), app.unkeyed, n)
			}
			t.Logf("%s store: SIGKILL with %d replays in flight (%d had reached the app): %d lost, %d sent twice; %d requests reached the app for %d keys",
				st.name, n, forwarded, n-len(app.acted), twice, len(app.Submissions()), len(app.acted))
		})
	}
}

// loginForm is the login form of a login page's hidden fields.
func loginForm(f url.Values) string {
	v := url.Values{}
	for k, vs := range f {
		v[k] = vs
	}
	v.Set("username", procUser)
	v.Set("password", procPassword)
	return v.Encode()
}
