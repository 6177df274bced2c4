package session

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// Limits that keep the cookie under what every browser stores (4096 bytes
// for name, value and attributes).
const (
	// MaxResults is how many ResultRefs a Cookie carries; adding one more
	// drops the oldest.
	MaxResults = 8
	// MaxResultURLLen is the longest URL a ResultRef may hold; AddResult and
	// Save reject longer ones. An answer to a longer URL cannot be shown
	// after a 303 and must be delivered another way (or dropped).
	MaxResultURLLen = 1024
	// maxCookieLen bounds the whole Set-Cookie value; Save drops the oldest
	// results until the cookie fits.
	maxCookieLen = 4096

	defaultCookieName   = "_postern"
	defaultCookieMaxAge = 7 * 24 * time.Hour
)

// ErrURLTooLong is returned for a ResultRef whose URL is longer than
// MaxResultURLLen.
var ErrURLTooLong = errors.New("result url too long for the cookie")

// Cookie is what the browser carries: small, authenticated and encrypted.
type Cookie struct {
	SID       string      // server-side session id; empty before login
	BrowserID string      // random per browser; binds stashes and results to it
	CSRF      string      // token for the gateway's own forms
	Results   []ResultRef // answers waiting to be shown once, oldest first
	IsNew     bool        // no valid cookie came with the request
}

// ResultRef points at a kept Result waiting at URL. URL is at most
// MaxResultURLLen bytes.
type ResultRef struct {
	URL string
	ID  string
}

// AddResult appends ref, dropping the oldest refs beyond MaxResults. It
// returns ErrURLTooLong (and keeps nothing) if ref.URL is too long.
func (c *Cookie) AddResult(ref ResultRef) error {
	if len(ref.URL) > MaxResultURLLen {
		return ErrURLTooLong
	}
	c.Results = append(c.Results, ref)
	if over := len(c.Results) - MaxResults; over > 0 {
		c.Results = append([]ResultRef(nil), c.Results[over:]...)
	}
	return nil
}

// TakeResult removes and returns the newest ref waiting at url, if any.
func (c *Cookie) TakeResult(url string) (ResultRef, bool) {
	for i := len(c.Results) - 1; i >= 0; i-- {
		if c.Results[i].URL == url {
			ref := c.Results[i]
			c.Results = append(c.Results[:i:i], c.Results[i+1:]...)
			return ref, true
		}
	}
	return ResultRef{}, false
}

// CookieOptions configures the session cookie.
type CookieOptions struct {
	// Name of the cookie; default "_postern".
	Name string
	// Secrets, newest first, each at least 32 bytes: the cookie is written
	// with keys derived from the first and read with any, so a secret can be
	// rotated without logging everyone out.
	Secrets [][]byte
	// Secure marks the cookie https-only; set it whenever the public URL is
	// https.
	Secure bool
	// MaxAge is how long the browser keeps the cookie and the gateway
	// accepts it; default 7 days. The server-side session expires on its own.
	MaxAge time.Duration
	// Path of the cookie; default "/".
	Path string
	// Domain, when set (e.g. "example.com"), shares the cookie with every
	// host under it: single sign-on across sibling hosts. It is set only on
	// responses to hosts within the domain; other hosts, and every host
	// when Domain is empty (the default), get a host-only cookie.
	Domain string
}

// Cookies reads and writes the session cookie with gorilla/sessions: a
// CookieStore whose hash (HMAC-SHA256) and block (AES-256) keys are derived
// with HKDF-SHA256 from each secret. The cookie is HttpOnly and
// SameSite=Lax. Cookies is safe for concurrent use.
type Cookies struct {
	name   string
	store  *sessions.CookieStore
	domain string       // "" for host-only cookies
	opened *cookieCache // values verified before
}

// NewCookies returns Cookies for opts, or an error naming what is wrong.
func NewCookies(opts CookieOptions) (*Cookies, error) {
	if err := checkSecrets(opts.Secrets); err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = defaultCookieName
		switch {
		case opts.Secure && opts.Domain == "":
			// Over https, the __Host- prefix makes browsers refuse the
			// cookie from any other host or path (no subdomain can plant it).
			opts.Name = "__Host-postern"
		case opts.Secure:
			// A cookie with a Domain cannot be __Host-; __Secure- still
			// makes browsers refuse it over plain http.
			opts.Name = "__Secure-postern"
		}
	}
	if opts.Path == "" {
		opts.Path = "/"
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = defaultCookieMaxAge
	}
	if opts.MaxAge < time.Second {
		return nil, fmt.Errorf("cookie max age %s: must be at least 1s", opts.MaxAge)
	}
	var pairs [][]byte
	for _, secret := range opts.Secrets {
		hashKey, err := hkdf.Key(sha256.New, secret, nil, infoHash, 64)
		if err != nil {
			return nil, fmt.Errorf("derive cookie hash key: %w", err)
		}
		blockKey, err := hkdf.Key(sha256.New, secret, nil, infoBlock, 32)
		if err != nil {
			return nil, fmt.Errorf("derive cookie block key: %w", err)
		}
		pairs = append(pairs, hashKey, blockKey)
	}
	store := sessions.NewCookieStore(pairs...)
	store.Options = &sessions.Options{
		Path:     opts.Path,
		Secure:   opts.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	store.MaxAge(int(opts.MaxAge / time.Second))
	// The payload is already JSON: the codecs carry its bytes as they are,
	// instead of gob-encoding a map on every request.
	for _, c := range store.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.SetSerializer(securecookie.NopEncoder{})
		}
	}
	domain := strings.ToLower(strings.Trim(opts.Domain, "."))
	return &Cookies{name: opts.Name, store: store, domain: domain, opened: newCookieCache(opts.MaxAge)}, nil
}

// wireCookie is the cookie's payload: short names keep it small.
type wireCookie struct {
	SID       string      `json:"s,omitempty"`
	BrowserID string      `json:"b"`
	CSRF      string      `json:"c"`
	Results   [][2]string `json:"r,omitempty"` // {url, id}
}

// Name is the cookie's name, so the gateway can keep it from upstreams.
func (c *Cookies) Name() string { return c.name }

// Load returns the request's cookie, or a fresh one (IsNew, new BrowserID
// and CSRF) when it is missing, tampered with, expired or from a secret no
// longer configured. It never fails.
func (c *Cookies) Load(r *http.Request) *Cookie {
	// Every cookie of the name is tried, the first that verifies wins: a
	// cookie planted with a narrower Path (from a sibling subdomain) comes
	// first in the header and must not hide the real one.
	var w wireCookie
	found := false
	cookieValues(r, c.name, func(value string) bool {
		if cw, ok := c.opened.get(value); ok {
			w, found = cw, true
			return true
		}
		var raw []byte
		if err := securecookie.DecodeMulti(c.name, value, &raw, c.store.Codecs...); err != nil {
			return false
		}
		var cw wireCookie
		if err := json.Unmarshal(raw, &cw); err != nil || cw.BrowserID == "" || cw.CSRF == "" {
			return false
		}
		c.opened.add(value, cw)
		w, found = cw, true
		return true
	})
	if !found {
		return freshCookie()
	}
	ck := &Cookie{SID: w.SID, BrowserID: w.BrowserID, CSRF: w.CSRF}
	for _, r := range w.Results {
		_ = ck.AddResult(ResultRef{URL: r[0], ID: r[1]}) // applies the same caps as Save
	}
	return ck
}

func freshCookie() *Cookie {
	return &Cookie{BrowserID: NewID(), CSRF: NewID(), IsNew: true}
}

// Save writes the cookie to the response. It keeps at most MaxResults
// results (the newest) and, if the encoded cookie would still exceed 4096
// bytes, drops the oldest results until it fits. A ResultRef whose URL is
// longer than MaxResultURLLen is an error (ErrURLTooLong); nothing is
// written then.
func (c *Cookies) Save(w http.ResponseWriter, r *http.Request, ck *Cookie) error {
	for _, ref := range ck.Results {
		if len(ref.URL) > MaxResultURLLen {
			return fmt.Errorf("save cookie: %w", ErrURLTooLong)
		}
	}
	if over := len(ck.Results) - MaxResults; over > 0 {
		ck.Results = append([]ResultRef(nil), ck.Results[over:]...)
	}
	opts := *c.store.Options
	if c.domain != "" && withinDomain(requestHost(r), c.domain) {
		opts.Domain = c.domain
	}
	for {
		wc := wireCookie{SID: ck.SID, BrowserID: ck.BrowserID, CSRF: ck.CSRF}
		for _, ref := range ck.Results {
			wc.Results = append(wc.Results, [2]string{ref.URL, ref.ID})
		}
		raw, err := json.Marshal(wc)
		if err != nil {
			return fmt.Errorf("save cookie: %w", err)
		}
		encoded, err := securecookie.EncodeMulti(c.name, raw, c.store.Codecs...)
		if err == nil {
			hc := sessions.NewCookie(c.name, encoded, &opts)
			if len(hc.String()) <= maxCookieLen {
				http.SetCookie(w, hc)
				return nil
			}
		}
		if len(ck.Results) == 0 {
			if err == nil {
				err = errors.New("cookie too large")
			}
			return fmt.Errorf("save cookie: %w", err)
		}
		ck.Results = append([]ResultRef(nil), ck.Results[1:]...)
	}
}

// withinDomain reports whether host is domain or one of its subdomains.
func withinDomain(host, domain string) bool {
	host = strings.ToLower(host)
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// requestHost is the request's host name without port.
func requestHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		return h
	}
	return r.Host
}
