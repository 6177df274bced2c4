package session

// CONTRACT (to be implemented; this file is replaced by the implementation).
// Signatures the gateway is written against. Bodies panic until implemented.

import (
	"errors"
	"context"
	"io"
	"net/http"
	"time"
)

// Sealer encrypts and authenticates everything written to a Backend, with keys
// derived (HKDF-SHA256) from the cookie secrets: the first secret seals, every
// secret opens (rotation). Each entry's key is bound to the entry's name, so a
// sealed value moved to another key does not open.
type Sealer struct{}

// NewSealer returns a Sealer for the given secrets, newest first. Each secret
// must be at least 32 bytes.
func NewSealer(secrets [][]byte) (*Sealer, error) { panic("unimplemented") }

// Stored is a stashed request: what is replayed after login.
type Stored struct {
	Method  string
	Host    string // the Host the request was sent to (routes by host)
	URL     string      // path and query, as received (RequestURI form)
	Header  http.Header // the headers the upstream needs (Content-Type, ...)
	Owner   string      // BrowserID of the browser that submitted it
	Created time.Time
	Size    int64 // body length in bytes
}

// Result is a kept upstream answer, shown once at URL after a 303.
type Result struct {
	Status int
	Header http.Header
	Owner  string // BrowserID
	URL    string // where it is shown
	Size   int64
}

// Record is a server-side session: who is logged in, and tokens.
type Record struct {
	User    string
	Email   string
	Groups  []string
	Subject string
	Method  string // "local" or "oidc"
	LoginAt time.Time
	Expires time.Time
	// OIDC tokens, empty for local users.
	AccessToken  string
	RefreshToken string
	IDToken      string
	TokenExpiry  time.Time
}

// LoginState is what an OIDC login in progress remembers between the redirect
// to the provider and the callback (one per tab).
type LoginState struct {
	BrowserID string
	Nonce     string
	Verifier  string // PKCE code verifier
	StashID   string // pending submission, if any
	ReturnURL string // where to go after login when there is no stash
	Created   time.Time
}

// Store is the gateway's view of a Backend: typed, sealed, namespaced.
type Store struct{}

// NewStore returns a Store over b, sealing with s.
func NewStore(b Backend, s *Sealer) *Store { panic("unimplemented") }

func (st *Store) PutStash(ctx context.Context, id string, req Stored, body io.Reader, limit int64, ttl time.Duration) (int64, error) {
	panic("unimplemented")
}
func (st *Store) TakeStash(ctx context.Context, id string) (Stored, io.ReadCloser, error) {
	panic("unimplemented")
}
func (st *Store) RestoreStash(ctx context.Context, id string) error { panic("unimplemented") }
func (st *Store) DeleteStash(ctx context.Context, id string) error  { panic("unimplemented") }

func (st *Store) PutResult(ctx context.Context, id string, res Result, body io.Reader, limit int64, ttl time.Duration) (int64, error) {
	panic("unimplemented")
}
func (st *Store) TakeResult(ctx context.Context, id string) (Result, io.ReadCloser, error) {
	panic("unimplemented")
}
func (st *Store) DeleteResult(ctx context.Context, id string) error { panic("unimplemented") }

func (st *Store) GetSession(ctx context.Context, sid string) (Record, error) { panic("unimplemented") }
func (st *Store) SaveSession(ctx context.Context, sid string, rec Record, ttl time.Duration) error {
	panic("unimplemented")
}
func (st *Store) DeleteSession(ctx context.Context, sid string) error { panic("unimplemented") }

func (st *Store) SaveLoginState(ctx context.Context, state string, ls LoginState, ttl time.Duration) error {
	panic("unimplemented")
}
func (st *Store) TakeLoginState(ctx context.Context, state string) (LoginState, error) {
	panic("unimplemented")
}

func (st *Store) Ping(ctx context.Context) error { panic("unimplemented") }

// Cookie is what the browser carries: small, authenticated and encrypted.
type Cookie struct {
	SID       string      // server-side session id; empty before login
	BrowserID string      // random per browser; binds stashes and results to it
	CSRF      string      // token for the gateway's own forms
	Results   []ResultRef // answers waiting to be shown once
	IsNew     bool        // no valid cookie came with the request
}

// ResultRef points at a kept Result waiting at URL.
type ResultRef struct {
	URL string
	ID  string
}

// Cookies reads and writes the session cookie with gorilla/sessions.
type Cookies struct{}

// CookieOptions configures the session cookie.
type CookieOptions struct {
	Name    string
	Secrets [][]byte // newest first
	Secure  bool
	MaxAge  time.Duration
	Path    string
}

func NewCookies(opts CookieOptions) (*Cookies, error) { panic("unimplemented") }

// Load returns the request's cookie, or a fresh one (IsNew, new BrowserID
// and CSRF) when it is missing, tampered with or from another key.
func (c *Cookies) Load(r *http.Request) *Cookie { panic("unimplemented") }

// Save writes the cookie to the response.
func (c *Cookies) Save(w http.ResponseWriter, r *http.Request, ck *Cookie) error {
	panic("unimplemented")
}

// NewID returns an unguessable id: 128 random bits, base64url.
func NewID() string { panic("unimplemented") }

// ErrCorrupt means a sealed value did not open (tampered, or sealed under an unknown secret).
var ErrCorrupt = errors.New("corrupt or unreadable entry")

// Name is the cookie's name.
func (c *Cookies) Name() string { panic("unimplemented") }

// AddResult records that the answer id waits at url. It reports false when
// the URL is too long to keep in the cookie.
func (ck *Cookie) AddResult(url, id string) bool { panic("unimplemented") }

// RemoveResult forgets the answer id.
func (ck *Cookie) RemoveResult(id string) { panic("unimplemented") }
