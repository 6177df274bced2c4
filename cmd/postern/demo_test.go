package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoKeepsAnOrderAcrossLogin runs "postern demo" in-process with the
// real gateway, file store and checkout app, and walks the promise: an order
// posted before login arrives once after it, and is shown at the original URL.
func TestDemoKeepsAnOrderAcrossLogin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0"}, env{
			stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" },
		})
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("demo exited %d: %s", code, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop")
		}
	}()

	banner := regexp.MustCompile(`Open:\s+(http://127\.0\.0\.1:\d+)/\s+Log in as:\s+demo\s+Password:\s+(\S+)`)
	var m []string
	for deadline := time.Now().Add(90 * time.Second); m == nil; {
		if m = banner.FindStringSubmatch(out.String()); m == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no banner; stdout %q stderr %q", out.String(), errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	base, password := m[1], m[2]
	for _, w := range []string{"/checkout", "/.postern/logout", "Ctrl+C"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("banner lacks %q", w)
		}
	}

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, target, ctype, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Origin", base)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// The order, before any login.
	const form = "application/x-www-form-urlencoded"
	order := url.Values{"item": {"Green mug"}, "quantity": {"2"}}.Encode()
	method, target, ctype, body := "POST", base+"/checkout", form, order
	var page string
	loggedIn := false
	for hop := 0; hop < 10; hop++ {
		resp, b := send(method, target, ctype, body)
		loc, _ := resp.Location()
		switch {
		case resp.StatusCode == http.StatusTemporaryRedirect: // keeps method and body
			target = loc.String()
		case resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound:
			method, target, ctype, body = "GET", loc.String(), "", ""
		case resp.StatusCode == http.StatusOK && !loggedIn && strings.Contains(b, `name="password"`):
			fields := url.Values{"username": {"demo"}, "password": {password}}
			for _, h := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`).FindAllStringSubmatch(b, -1) {
				fields.Set(h[1], htmlUnescape(h[2]))
			}
			method, target, ctype, body = "POST", base+"/.postern/login", form, fields.Encode()
			loggedIn = true
		default:
			page = b
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s = %d: %s", method, target, resp.StatusCode, b)
			}
		}
		if page != "" {
			if !strings.HasSuffix(target, "/checkout") {
				t.Errorf("result shown at %s, want the original URL /checkout", target)
			}
			break
		}
	}
	if !loggedIn {
		t.Fatal("never saw the login form")
	}
	for _, w := range []string{"Order <strong>#1</strong>", "<strong>1</strong> order in total", "yes (X-Postern-Replayed: true)", "<td>demo</td>", "<th>item</th><td>Green mug</td>"} {
		if !strings.Contains(page, w) {
			t.Errorf("result page lacks %q:\n%s", w, page)
		}
	}

	// A refresh shows the form again, not a second order.
	_, again := send("GET", base+"/checkout", "", "")
	if strings.Contains(again, "Order <strong>#") || !strings.Contains(again, `action="checkout"`) {
		t.Errorf("refresh after the result:\n%s", again)
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}
