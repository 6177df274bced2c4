package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/gateway"
	"github.com/postern/postern/gateway/gatewaytest"
)

// logBuffer collects JSON log lines for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the log lines whose msg is msg, decoded.
func (l *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// newLoggedEnv is an env whose gateway logs JSON at level info into the
// returned buffer, with the access log on, trusting the proxies given.
func newLoggedEnv(t *testing.T, trusted ...netip.Prefix) (*env, *logBuffer) {
	logs := &logBuffer{}
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	e.parts = func(p *gateway.Parts, o *gateway.Options) {
		p.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		o.AccessLog = true
		o.TrustedProxies = trusted
	}
	e.start()
	return e, logs
}

var idRE = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-z]+$`)

// TestAccessLog: one access line per request, with every field, and never
// the query string, a cookie, a password or a body; audit lines for the
// login and the logout; the request id on the answer, at the app and in
// the log.
func TestAccessLog(t *testing.T) {
	e, logs := newLoggedEnv(t)
	b := e.browser()

	// A submission without a session, a failed and a good login (the
	// replay), a page, a logout.
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/orders?coupon=query-secret", "application/x-www-form-urlencoded", []byte("card=body-secret"))
	gatewaytest.ExpectStatus(t, b.Login(f, testUser, "wrong-password-secret"), http.StatusUnauthorized)
	resp := b.Login(f, testUser, testPassword)
	gatewaytest.ReadBody(t, resp)
	loginID := resp.Header.Get("X-Request-Id")
	page := b.Follow(resp, http.StatusOK)
	if !strings.Contains(page, "POST /orders?coupon=query-secret user=alice replayed=true") {
		t.Fatalf("the replay did not reach the app: %s", page)
	}
	resp = b.Do(http.MethodGet, "/account?token=query-token-secret", "", nil)
	gatewaytest.ReadBody(t, resp)
	pageID := resp.Header.Get("X-Request-Id")
	if !idRE.MatchString(pageID) || !idRE.MatchString(loginID) || pageID == loginID {
		t.Fatalf("request ids %q, %q: want two different made ids", loginID, pageID)
	}
	lp := gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/.postern/logout", "", nil), http.StatusOK)
	gatewaytest.ReadBody(t, b.Do(http.MethodPost, "/.postern/logout", "application/x-www-form-urlencoded", []byte("csrf="+gatewaytest.HiddenFields(lp).Get("csrf"))))

	// The app got the ids: the live request its own, the replay the id of
	// the login that sent it.
	var gotPage, gotReplay string
	for _, r := range e.up.Requests() {
		switch r.Path {
		case "/account":
			gotPage = r.Header.Get("X-Request-Id")
		case "/orders":
			gotReplay = r.Header.Get("X-Request-Id")
		}
	}
	if gotPage != pageID || gotReplay != loginID {
		t.Errorf("ids at the app: page %q replay %q; want %q and %q", gotPage, gotReplay, pageID, loginID)
	}

	access := logs.lines(t, "access")
	byID := map[string]map[string]any{}
	for _, a := range access {
		for _, k := range []string{"method", "path", "status", "bytes", "duration", "user", "route", "outcome", "request_id", "client"} {
			if _, ok := a[k]; !ok {
				t.Errorf("access line without %s: %v", k, a)
			}
		}
		byID[a["request_id"].(string)] = a
	}
	// One line per request: no id twice, and every request another line
	// is about (audit, replay) has its access line.
	if len(byID) != len(access) || len(access) < 8 {
		t.Errorf("%d access lines for %d request ids, want one per request (at least 8):\n%s", len(access), len(byID), logs.String())
	}
	for _, msg := range []string{"audit", "submission replayed", "submission stashed for login"} {
		for _, l := range logs.lines(t, msg) {
			if byID[l["request_id"].(string)] == nil {
				t.Errorf("%s line without an access line for its request: %v", msg, l)
			}
		}
	}
	a := byID[pageID]
	if a == nil || a["method"] != "GET" || a["path"] != "/account" || a["status"] != float64(200) || a["user"] != testUser ||
		a["route"] != "*" || a["outcome"] != "proxied" || a["bytes"].(float64) <= 0 || a["client"] != "127.0.0.1" {
		t.Errorf("access line of /account: %v", a)
	}
	if a := byID[loginID]; a == nil || a["path"] != "/.postern/login" || a["status"] != float64(303) || a["outcome"] != "gateway" {
		t.Errorf("access line of the login: %v", a)
	}

	audits := logs.lines(t, "audit")
	var seen []string
	for _, a := range audits {
		seen = append(seen, a["action"].(string)+":"+a["result"].(string)+":"+a["user"].(string))
		if a["request_id"] == nil || a["request_id"] == "" {
			t.Errorf("audit line without a request id: %v", a)
		}
	}
	if want := "login:failed:alice login:ok:alice logout:ok:alice"; strings.Join(seen, " ") != want {
		t.Errorf("audit lines %v, want %s", seen, want)
	}
	// The replay's log line carries the login's request id.
	for _, r := range logs.lines(t, "submission replayed") {
		if r["request_id"] != loginID {
			t.Errorf("replay line with request id %v, want %s", r["request_id"], loginID)
		}
	}

	all := logs.String()
	for _, secret := range []string{"query-secret", "coupon", "query-token-secret", "body-secret", "wrong-password-secret", testPassword, "postern="} {
		if strings.Contains(all, secret) {
			t.Errorf("the log contains %q:\n%s", secret, all)
		}
	}
	if ck := e.loginCookie(t); strings.Contains(logs.String(), strings.SplitN(ck, "=", 2)[1][:20]) {
		t.Error("the log contains the session cookie")
	}
}

// TestRequestIDs: an id from a trusted proxy is kept when it looks sane;
// from anyone else, or when it does not, a new one is made. Error pages and
// JSON errors show it.
func TestRequestIDs(t *testing.T) {
	trusted, _ := newLoggedEnv(t, netip.MustParsePrefix("127.0.0.1/32"))
	untrusted, _ := newLoggedEnv(t)
	for _, tc := range []struct {
		name string
		e    *env
		sent string
		keep bool
	}{
		{"trusted proxy, uuid", trusted, "3f2b8a6e-4c1d-4e5f-9a7b-1c2d3e4f5a6b", true},
		{"trusted proxy, aws", trusted, "Root=1-5e1b4151-5ac6c58f5b5daa6532e4f2e1", true},
		{"trusted proxy, newline", trusted, "abc\r\nX-Evil: 1", false},
		{"trusted proxy, quote", trusted, `abc"def`, false},
		{"trusted proxy, too long", trusted, strings.Repeat("a", 129), false},
		{"untrusted", untrusted, "3f2b8a6e-4c1d-4e5f-9a7b-1c2d3e4f5a6b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tc.e.gw.URL+"/.postern/no-such-page", nil)
			req.Header.Set("Accept", "text/html")
			// Set by hand: Go refuses a header value with CR LF.
			req.Header["X-Request-Id"] = []string{strings.ReplaceAll(tc.sent, "\r\n", " ")}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page := gatewaytest.ReadBody(t, resp)
			got := resp.Header.Get("X-Request-Id")
			if tc.keep && got != tc.sent {
				t.Errorf("id %q, want the proxy's %q kept", got, tc.sent)
			}
			if !tc.keep && !idRE.MatchString(got) {
				t.Errorf("id %q, want a new one", got)
			}
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "Request id: <code>"+got+"</code>") {
				t.Errorf("error page (%d) does not show the id %q:\n%s", resp.StatusCode, got, page)
			}
		})
	}
	resp := untrusted.browser().Do(http.MethodGet, "/.postern/no-such-page", "", nil, "Accept", "application/json", "Sec-Fetch-Mode", "cors")
	var body map[string]string
	if err := json.Unmarshal([]byte(gatewaytest.ReadBody(t, resp)), &body); err != nil || body["request_id"] != resp.Header.Get("X-Request-Id") || body["request_id"] == "" {
		t.Errorf("JSON error %v: want request_id %q", body, resp.Header.Get("X-Request-Id"))
	}
}

// BenchmarkAccessLog compares a logged-in proxied GET with the access log
// on (the default: the recording writer, the id, one line formatted into a
// discarding text handler at info) and off, in one run:
//
//	go test -run '^$' -bench AccessLog -benchmem ./gateway
func BenchmarkAccessLog(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			e := &env{t: b, up: gatewaytest.NewUpstream(b), storeDir: b.TempDir(), transport: gateway.NewTransport()}
			e.up.SetAnswer(func(w http.ResponseWriter, _ *http.Request, _ gatewaytest.Request) { _, _ = w.Write([]byte("ok")) })
			e.parts = func(p *gateway.Parts, o *gateway.Options) {
				p.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
				o.AccessLog = on
			}
			e.start()
			cookie := e.loginCookie(b)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/page?q=1", nil)
					req.Header.Set("Cookie", cookie)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
