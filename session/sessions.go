package session

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// SessionCacheSize is how many session records a Store keeps in memory at
// most (the most recently used); beyond it, lookups read the backend.
const SessionCacheSize = 10000

// GetSession returns the server-side session sid, or ErrNotFound. On a
// backend that is a Watcher the record comes from memory when it can: it
// was read or written by this process, no change to it has been heard of
// since, and (on a shared backend) it is younger than the backend's
// StaleBound.
func (st *Store) GetSession(ctx context.Context, sid string) (Record, error) {
	var rec Record
	key, err := entryKey(nsSession, sid)
	if err != nil {
		return rec, fmt.Errorf("get session: %w: %w", ErrNotFound, err)
	}
	if rec, ok := st.sessions.get(key); ok {
		return rec, nil
	}
	return st.readSession(ctx, key)
}

// ReloadSession is GetSession from the backend, never from memory: for a
// caller that must see another process's write even if its notice was
// lost (the OIDC refresh, under its lease, before spending a refresh
// token).
func (st *Store) ReloadSession(ctx context.Context, sid string) (Record, error) {
	key, err := entryKey(nsSession, sid)
	if err != nil {
		return Record{}, fmt.Errorf("get session: %w: %w", ErrNotFound, err)
	}
	st.sessions.forget(key)
	return st.readSession(ctx, key)
}

func (st *Store) readSession(ctx context.Context, key string) (Record, error) {
	var rec Record
	epoch := st.sessions.epochNow()
	sealed, err := st.b.Get(ctx, key)
	if err != nil {
		return rec, fmt.Errorf("get session: %w", err)
	}
	plain, err := st.s.Open(key, sealed)
	if err != nil {
		return rec, fmt.Errorf("get session: %w", err)
	}
	if err := decodeRecord(plain, &rec); err != nil {
		// It authenticated, so we wrote it: an incompatible older format.
		return Record{}, fmt.Errorf("get session: decode: %w: %w", ErrCorrupt, err)
	}
	st.sessions.add(key, rec, epoch)
	return rec, nil
}

// SaveSession stores the server-side session sid for ttl, replacing any,
// and returns once every process sharing the backend forgot the old one.
func (st *Store) SaveSession(ctx context.Context, sid string, rec Record, ttl time.Duration) error {
	key, err := entryKey(nsSession, sid)
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	sealed, err := st.s.Seal(key, appendRecord(make([]byte, 0, 512), &rec))
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if err := st.b.Set(ctx, key, sealed, ttl); err != nil {
		st.sessions.forget(key) // it may have been written
		return fmt.Errorf("save session: %w", err)
	}
	if err := st.sessions.changed(ctx, key); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// DeleteSession removes the server-side session sid (logout), and returns
// once every process sharing the backend forgot it. A missing one is not an
// error.
func (st *Store) DeleteSession(ctx context.Context, sid string) error {
	key, err := entryKey(nsSession, sid)
	if err != nil {
		return nil // no such key can exist
	}
	if err := st.b.Delete(ctx, key); err != nil {
		st.sessions.forget(key)
		return fmt.Errorf("delete session: %w", err)
	}
	if err := st.sessions.changed(ctx, key); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// sessionCache keeps session records read or written by this process,
// while the backend's Watcher says nothing changed them. A nil
// *sessionCache caches nothing.
type sessionCache struct {
	w     Watcher
	bound time.Duration // 0: until a change is heard
	now   func() time.Time
	lru   *lru.Cache[string, cachedRecord]
	// epoch counts changes heard. A record read from the backend is kept
	// only if no change was heard while it was read: the change may have
	// come after the read.
	epoch atomic.Uint64
}

type cachedRecord struct {
	rec  Record
	read time.Time
}

// newSessionCache returns a cache over b, or nil when b cannot tell of
// changes (or its watch fails to start: then nothing is cached).
func newSessionCache(b Backend) *sessionCache {
	w, ok := b.(Watcher)
	if !ok {
		return nil
	}
	l, err := lru.New[string, cachedRecord](SessionCacheSize)
	if err != nil {
		return nil
	}
	c := &sessionCache{w: w, bound: w.StaleBound(), now: time.Now, lru: l}
	if _, err := w.Watch(c.forget); err != nil {
		return nil
	}
	return c
}

func (c *sessionCache) get(key string) (Record, bool) {
	if c == nil {
		return Record{}, false
	}
	e, ok := c.lru.Get(key)
	if !ok {
		return Record{}, false
	}
	if c.bound > 0 && c.now().Sub(e.read) >= c.bound {
		c.lru.Remove(key)
		return Record{}, false
	}
	return e.rec, true
}

func (c *sessionCache) epochNow() uint64 {
	if c == nil {
		return 0
	}
	return c.epoch.Load()
}

// add keeps rec, read when the epoch was epoch, unless a change was heard
// since.
func (c *sessionCache) add(key string, rec Record, epoch uint64) {
	if c == nil {
		return
	}
	c.lru.Add(key, cachedRecord{rec: rec, read: c.now()})
	// A change heard while adding: the change may be to this record.
	if c.epoch.Load() != epoch {
		c.lru.Remove(key)
	}
}

// forget drops key: it changed (Watch calls it for every change heard).
// An empty key drops every record.
func (c *sessionCache) forget(key string) {
	if c == nil {
		return
	}
	c.epoch.Add(1)
	if key == "" {
		c.lru.Purge()
		return
	}
	c.lru.Remove(key)
}

// changed forgets key here and tells every other process sharing the
// backend.
func (c *sessionCache) changed(ctx context.Context, key string) error {
	if c == nil {
		return nil
	}
	c.forget(key)
	return c.w.Changed(ctx, key)
}
