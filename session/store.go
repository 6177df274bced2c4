package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Backend key namespaces. Every entry's sealing is bound to its full key, so
// an entry moved between namespaces does not open either.
const (
	nsStash   = "stash:"
	nsSession = "sess:"
	nsLogin   = "login:"
)

// Stored is a stashed request: what is replayed after login.
type Stored struct {
	Method string
	Host   string      // Host the request was sent to (routes match on it)
	URL    string      // path and query, as received (RequestURI form)
	Header http.Header // the headers the upstream needs (Content-Type, ...)
	Owner  string      // BrowserID of the browser that submitted it
	// Created is when the submission arrived.
	Created time.Time
	// Size is the body length in bytes as declared by the request
	// (its ContentLength), or -1 when it was not known in advance. PutStash
	// fails if the body is not exactly Size bytes long.
	Size int64
	// Cookie is the Cookie header the browser sent with the submission,
	// without the gateway's own cookie, so the replay carries the app's
	// cookies as they were (path-scoped and SameSite=Strict ones too).
	// Sealed with the rest of Stored.
	Cookie string
	// IdempotencyKey is the opaque id made when the submission was kept,
	// sent as Idempotency-Key with every send of this one submission.
	IdempotencyKey string
}

// Result is a kept upstream answer, shown once at URL after a 303.
type Result struct {
	Status int
	Header http.Header
	Owner  string // BrowserID
	URL    string // where it is shown
	// Size is the body length in bytes as declared by the upstream, or -1
	// when unknown. Answer fails if the body is not exactly Size bytes.
	Size int64
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
	// Handoff is set for a login started on another host than the public
	// URL's: after the callback the browser is handed back there.
	Handoff *Handoff `json:",omitempty"`
}

// Store is the gateway's view of a Backend: typed, sealed, namespaced.
//
// Every method's errors can be tested with errors.Is against ErrNotFound,
// ErrTaken, ErrTooLarge and ErrUnavailable (passed through from the
// Backend) and ErrCorrupt (a value or body that does not open). An id that
// cannot be a key (empty, too long, not printable ASCII) is ErrNotFound for
// reads and a plain error for writes. A Store is safe for concurrent use.
type Store struct {
	b        Backend
	s        *Sealer
	now      func() time.Time
	sessions *sessionCache // nil when b is not a Watcher
}

// StoreOption changes a Store made by NewStore.
type StoreOption func(*Store)

// WithStoreClock sets the clock that decides whether a lease has lapsed
// (default time.Now). Every Store sharing a backend should agree on the
// time within a fraction of MaxLease.
func WithStoreClock(now func() time.Time) StoreOption {
	return func(st *Store) { st.now = now }
}

// NewStore returns a Store over b, sealing with s.
func NewStore(b Backend, s *Sealer, opts ...StoreOption) *Store {
	st := &Store{b: b, s: s, now: time.Now, sessions: newSessionCache(b)}
	for _, o := range opts {
		o(st)
	}
	return st
}

// PutStash keeps a submission under id for ttl, pending, owned by
// req.Owner: req sealed, and the body streamed from body and sealed as it is
// read. A body of more than limit bytes gives ErrTooLarge and nothing is
// kept. It returns the number of body bytes kept.
func (st *Store) PutStash(ctx context.Context, id string, req Stored, body io.Reader, limit int64, ttl time.Duration) (int64, error) {
	key, err := entryKey(nsStash, id)
	if err != nil {
		return 0, fmt.Errorf("put stash: %w", err)
	}
	state := replayRecord{State: StatePending, Owner: st.s.Tag(key+"/owner", req.Owner)}.encode()
	return putSealed(st, key, req, req.Size, body, limit, func(meta []byte, sealed io.Reader, sealedLimit int64) (int64, error) {
		return st.b.PutEntry(ctx, key, meta, state, sealed, sealedLimit, ttl)
	})
}

// SaveLoginState remembers an OIDC login in progress under its state
// parameter for ttl.
func (st *Store) SaveLoginState(ctx context.Context, state string, ls LoginState, ttl time.Duration) error {
	if err := st.setRecord(ctx, nsLogin, state, ls, ttl); err != nil {
		return fmt.Errorf("save login state: %w", err)
	}
	return nil
}

// TakeLoginState returns and removes the login state under state, so a state
// is used at most once: a second call, even concurrent, gets ErrNotFound.
func (st *Store) TakeLoginState(ctx context.Context, state string) (LoginState, error) {
	var ls LoginState
	key, err := entryKey(nsLogin, state)
	if err != nil {
		return ls, fmt.Errorf("take login state: %w: %w", ErrNotFound, err)
	}
	sealed, err := st.b.GetDelete(ctx, key)
	if err != nil {
		return ls, fmt.Errorf("take login state: %w", err)
	}
	if err := st.open(key, sealed, &ls); err != nil {
		return LoginState{}, fmt.Errorf("take login state: %w", err)
	}
	return ls, nil
}

// Ping reports whether the backend can serve requests (readiness).
func (st *Store) Ping(ctx context.Context) error {
	return st.b.Ping(ctx)
}

func (st *Store) setRecord(ctx context.Context, ns, id string, v any, ttl time.Duration) error {
	key, err := entryKey(ns, id)
	if err != nil {
		return err
	}
	sealed, err := st.seal(key, v)
	if err != nil {
		return err
	}
	return st.b.Set(ctx, key, sealed, ttl)
}

func (st *Store) seal(key string, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", namespaceOf(key), err)
	}
	return st.s.Seal(key, plain)
}

func (st *Store) open(key string, sealed []byte, v any) error {
	plain, err := st.s.Open(key, sealed)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(plain, v); err != nil {
		// It authenticated, so we wrote it: an incompatible older format.
		return fmt.Errorf("decode %s: %w: %w", namespaceOf(key), ErrCorrupt, err)
	}
	return nil
}

// namespaceOf names an entry's kind for error messages without its id,
// which is a bearer secret.
func namespaceOf(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == ':' {
			return key[:i]
		}
	}
	return "entry"
}

// putSealed seals meta and streams body, sealed, into put; it enforces the
// plaintext limit and the declared size (-1: unknown).
// A body of another length than declared fails while it is read, so the
// backend keeps nothing of it.
func putSealed(st *Store, key string, meta any, size int64, body io.Reader, limit int64, put func(meta []byte, sealed io.Reader, sealedLimit int64) (int64, error)) (int64, error) {
	kind := namespaceOf(key)
	if limit < 0 {
		return 0, fmt.Errorf("put %s: negative limit", kind)
	}
	if size >= 0 && size > limit {
		return 0, fmt.Errorf("put %s: declared %d bytes, limit %d: %w", kind, size, limit, ErrTooLarge)
	}
	sealedMeta, err := st.seal(key, meta)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", kind, err)
	}
	counted := &limitCounter{r: body, limit: limit, size: size}
	sealedBody, err := st.s.SealStream(key, counted)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", kind, err)
	}
	// The backend's limit is on sealed bytes; the plaintext limit is enforced
	// by limitCounter, this one is a second fence.
	if _, err = put(sealedMeta, sealedBody, SealedSize(limit)); err != nil {
		if counted.over {
			err = ErrTooLarge
		}
		return 0, fmt.Errorf("put %s: %w", kind, err)
	}
	return counted.n, nil
}

// openedBody is a decrypting reader that closes the backend's reader.
type openedBody struct {
	io.Reader
	c io.Closer
}

func (o *openedBody) Close() error { return o.c.Close() }

// limitCounter counts the bytes read through it and fails with ErrTooLarge
// once more than limit bytes arrived, and with errSize when the body is
// not the size it declared (size -1: unknown).
type limitCounter struct {
	r     io.Reader
	limit int64
	size  int64
	n     int64
	over  bool
}

// errSize means a body's length differs from the one its request declared.
var errSize = errors.New("body length differs from the declared size")

func (l *limitCounter) Read(p []byte) (int, error) {
	if l.over {
		return 0, ErrTooLarge
	}
	// Read at most one byte past the limit: enough to know it is exceeded.
	if room := l.limit - l.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		l.over = true
		return n, ErrTooLarge
	}
	if l.size >= 0 && (l.n > l.size || (err == io.EOF && l.n != l.size)) {
		return n, fmt.Errorf("%w: %d bytes, declared %d", errSize, l.n, l.size)
	}
	return n, err
}
