package checkoutapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func mustContain(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q:\n%s", w, body)
		}
	}
}

func TestPagesAndRelativeLinks(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()

	resp, body := do(t, newReq(t, "GET", srv.URL+"/", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	mustContain(t, body, `href="checkout"`)

	resp, body = do(t, newReq(t, "GET", srv.URL+"/checkout", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("GET /checkout = %d", resp.StatusCode)
	}
	mustContain(t, body, `action="checkout"`, `name="item"`, `name="quantity"`, `name="note"`,
		`action="upload" enctype="multipart/form-data"`, `name="file" type="file"`, `name="comment"`, "POST /api/orders")
	if strings.Contains(body, "<script") {
		t.Error("the forms must work without JavaScript")
	}

	resp, _ = do(t, newReq(t, "GET", srv.URL+"/nope", nil))
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope = %d", resp.StatusCode)
	}
	resp, _ = do(t, newReq(t, "PUT", srv.URL+"/checkout", nil))
	if resp.StatusCode != 405 {
		t.Errorf("PUT /checkout = %d", resp.StatusCode)
	}
}

func TestOrderShowsWhatArrivedAndCounts(t *testing.T) {
	app := New()
	srv := httptest.NewServer(app)
	defer srv.Close()

	post := func(replayed bool) (*http.Response, string) {
		form := url.Values{"item": {"Green mug"}, "quantity": {"2"}, "note": {"<b>gift</b>"}}
		req := newReq(t, "POST", srv.URL+"/checkout", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-User", "demo")
		req.Header.Set("X-Forwarded-Email", "demo@example.com")
		req.Header.Set("X-Forwarded-Groups", "staff,buyers")
		if replayed {
			req.Header.Set("X-Postern-Replayed", "true")
		}
		return do(t, req)
	}

	resp, body := post(true)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /checkout = %d, want 200 with the page (not a redirect)", resp.StatusCode)
	}
	mustContain(t, body, "Order <strong>#1</strong>", "<strong>1</strong> order in total", "POST",
		"yes (X-Postern-Replayed: true)", "demo@example.com", "staff,buyers",
		"<th>item</th><td>Green mug</td>", "<th>quantity</th><td>2</td>",
		"&lt;b&gt;gift&lt;/b&gt;", `href="checkout"`)

	_, body = post(false)
	mustContain(t, body, "Order <strong>#2</strong>", "<strong>2</strong> orders in total", "<td>no</td>")
	if app.Orders() != 2 {
		t.Errorf("Orders() = %d", app.Orders())
	}
}

func TestUploadShowsFileNameSizeAndHash(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()

	content := bytes.Repeat([]byte("teapot design\n"), 5000)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "design.svg")
	fw.Write(content)
	mw.WriteField("comment", "bigger spout")
	mw.Close()
	req := newReq(t, "POST", srv.URL+"/upload", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())

	resp, body := do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /upload = %d: %s", resp.StatusCode, body)
	}
	sum := sha256.Sum256(content)
	mustContain(t, body, "design.svg", "<td>70000</td>", hex.EncodeToString(sum[:]),
		"<th>comment</th><td>bigger spout</td>", "Order <strong>#1</strong>")

	req = newReq(t, "POST", srv.URL+"/upload", strings.NewReader("x=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, _ := do(t, req); resp.StatusCode != 400 {
		t.Errorf("non-multipart upload = %d, want 400", resp.StatusCode)
	}
}

func TestAPIOrders(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()

	req := newReq(t, "POST", srv.URL+"/api/orders", strings.NewReader(`{"item":"Red kettle","quantity":3}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-User", "api-client")
	req.Header.Set("X-Postern-Replayed", "true")
	resp, body := do(t, req)
	if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /api/orders = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got struct {
		Order    int64
		Item     string
		Quantity int
		Replayed bool
		User     string
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Order != 1 || got.Item != "Red kettle" || got.Quantity != 3 || !got.Replayed || got.User != "api-client" {
		t.Errorf("answer %s", body)
	}

	for _, bad := range []string{`{`, `{"item":"x","quantity":0}`, `{"item":"x","quantity":1,"colour":"red"}`} {
		req := newReq(t, "POST", srv.URL+"/api/orders", strings.NewReader(bad))
		if resp, _ := do(t, req); resp.StatusCode != 400 {
			t.Errorf("%s = %d, want 400", bad, resp.StatusCode)
		}
	}
}
