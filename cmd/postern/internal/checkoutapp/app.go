package checkoutapp

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages are parsed once; templates are immutable after parsing.
var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// MaxUpload bounds an upload, so the demo cannot fill the disk.
const MaxUpload = 32 << 20

// App is the demo shop. The zero value is not usable; call New.
type App struct {
	orders atomic.Int64
	mux    *http.ServeMux
}

// New returns an App that has received no orders.
func New() *App {
	a := &App{mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /{$}", a.index)
	a.mux.HandleFunc("GET /checkout", a.checkoutForm)
	a.mux.HandleFunc("POST /checkout", a.order)
	a.mux.HandleFunc("POST /upload", a.upload)
	a.mux.HandleFunc("POST /api/orders", a.apiOrder)
	return a
}

// Orders is how many orders the app has received in total.
func (a *App) Orders() int64 { return a.orders.Load() }

// ServeHTTP serves the shop.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *App) index(w http.ResponseWriter, r *http.Request) { render(w, "index.html", nil) }

func (a *App) checkoutForm(w http.ResponseWriter, r *http.Request) { render(w, "checkout.html", nil) }

// field is one submitted form value.
type field struct{ Name, Value string }

// file is one uploaded file, described, not kept.
type file struct {
	Name   string
	Size   int64
	SHA256 string
}

// receipt is what the received page shows.
type receipt struct {
	Title               string
	Order, Total        int64
	Method              string
	Replayed            bool
	User, Email, Groups string
	Fields              []field
	Files               []file
}

func (a *App) newReceipt(r *http.Request, title string) receipt {
	n := a.orders.Add(1)
	return receipt{
		Title:    title,
		Order:    n,
		Total:    n,
		Method:   r.Method,
		Replayed: r.Header.Get("X-Postern-Replayed") == "true",
		User:     r.Header.Get("X-Forwarded-User"),
		Email:    r.Header.Get("X-Forwarded-Email"),
		Groups:   r.Header.Get("X-Forwarded-Groups"),
	}
}

// order answers the order form with 200 and the page (not a redirect), so
// the gateway's keep-and-show-once path is what a person sees after login.
func (a *App) order(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the order form could not be read", http.StatusBadRequest)
		return
	}
	rc := a.newReceipt(r, "Order received")
	rc.Fields = fields(r.PostForm)
	render(w, "received.html", rc)
}

func (a *App) upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		http.Error(w, "the upload form must be multipart/form-data", http.StatusBadRequest)
		return
	}
	var fs []field
	var files []file
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			http.Error(w, "the upload could not be read (at most 32 MiB)", http.StatusBadRequest)
			return
		}
		if p.FileName() != "" {
			var f file
			f, err = hashFile(p)
			files = append(files, f)
		} else {
			var v []byte
			v, err = io.ReadAll(io.LimitReader(p, 64<<10))
			fs = append(fs, field{Name: p.FormName(), Value: string(v)})
		}
		p.Close()
		if err != nil {
			http.Error(w, "the upload could not be read (at most 32 MiB)", http.StatusBadRequest)
			return
		}
	}
	rc := a.newReceipt(r, "Upload received")
	rc.Fields, rc.Files = fs, files
	render(w, "received.html", rc)
}

// hashFile reads an uploaded file to its end: name, size and SHA-256.
func hashFile(p *multipart.Part) (file, error) {
	h := sha256.New()
	n, err := io.Copy(h, p)
	return file{Name: p.FileName(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}

// apiOrder is the JSON API.
func (a *App) apiOrder(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Item     string `json:"item"`
		Quantity int    `json:"quantity"`
		Note     string `json:"note"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Item == "" || in.Quantity < 1 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"item": "...", "quantity": 1, "note": "..."}`})
		return
	}
	rc := a.newReceipt(r, "")
	writeJSON(w, http.StatusCreated, map[string]any{
		"order": rc.Order, "total_orders": rc.Total, "item": in.Item, "quantity": in.Quantity, "note": in.Note,
		"replayed": rc.Replayed, "user": rc.User, "email": rc.Email, "groups": rc.Groups,
	})
}

func fields(form map[string][]string) []field {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	slices.Sort(names)
	var out []field
	for _, k := range names {
		out = append(out, field{Name: k, Value: strings.Join(form[k], ", ")})
	}
	return out
}

func render(w http.ResponseWriter, name string, data any) {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, b.String())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
