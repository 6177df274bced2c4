package session

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// cookieCacheSize is how many verified cookie values Cookies remembers.
// A browser sends the same cookie value with every request until the
// gateway writes it again, so most requests skip base64, HMAC and AES.
const cookieCacheSize = 10000

// openedCookie is what a cookie value verified to, and when securecookie
// would stop accepting it (its timestamp plus MaxAge).
type openedCookie struct {
	wire    wireCookie
	expires time.Time
}

// cookieCache remembers verified cookie values. Its keys are whole
// authenticated values (they carry their own MAC), so no value that did
// not verify is ever in it, and it forgets each at the moment
// securecookie would refuse it.
type cookieCache struct {
	lru    *lru.Cache[string, openedCookie]
	maxAge time.Duration
	now    func() time.Time
}

func newCookieCache(maxAge time.Duration) *cookieCache {
	l, err := lru.New[string, openedCookie](cookieCacheSize)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &cookieCache{lru: l, maxAge: maxAge, now: time.Now}
}

func (c *cookieCache) get(value string) (wireCookie, bool) {
	o, ok := c.lru.Get(value)
	if !ok {
		return wireCookie{}, false
	}
	if !c.now().Before(o.expires) {
		c.lru.Remove(value)
		return wireCookie{}, false
	}
	return o.wire, true
}

// add remembers value, which securecookie just verified to w.
func (c *cookieCache) add(value string, w wireCookie) {
	// securecookie's value is base64("date|payload|mac"); the date is
	// authenticated by the MAC that was just checked.
	raw, err := base64.URLEncoding.DecodeString(value)
	if err != nil {
		return
	}
	date, _, ok := bytes.Cut(raw, []byte("|"))
	if !ok {
		return
	}
	ts, err := strconv.ParseInt(string(date), 10, 64)
	if err != nil {
		return
	}
	c.lru.Add(strings.Clone(value), openedCookie{wire: w, expires: time.Unix(ts, 0).Add(c.maxAge)})
}

// cookieValues calls fn with the value of every cookie called name in the
// request's Cookie headers, in order, until fn returns true. Unlike
// r.CookiesNamed it allocates nothing.
func cookieValues(r *http.Request, name string, fn func(value string) bool) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			n, v, ok := strings.Cut(part, "=")
			if !ok || n != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if fn(v) {
				return
			}
		}
	}
}
