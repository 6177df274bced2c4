package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// nsPending lists, per browser, the stashes waiting for its login, so the
// gateway can bound how many one browser keeps.
const nsPending = "pend:"

// ErrLimit means a limit that protects the store was reached: nothing was
// kept.
var ErrLimit = errors.New("limit reached")

type pendingEntry struct {
	ID      string    `json:"i"`
	Expires time.Time `json:"e"`
}

// ReservePending records that browser owner has stash id waiting until
// expires, unless it already has max unexpired ones: then it returns
// ErrLimit. The count is kept per browser in the store; under concurrent
// submissions from one browser it may be exceeded by the number racing,
// which a bound of this kind tolerates.
func (st *Store) ReservePending(ctx context.Context, owner, id string, max int, expires, now time.Time) error {
	key, err := entryKey(nsPending, owner)
	if err != nil {
		return fmt.Errorf("reserve pending: %w", err)
	}
	var list []pendingEntry
	sealed, err := st.b.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("reserve pending: %w", err)
	default:
		if err := st.open(key, sealed, &list); err != nil && !errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("reserve pending: %w", err)
		}
	}
	live := list[:0]
	last := expires
	for _, e := range list {
		if e.Expires.After(now) {
			live = append(live, e)
			if e.Expires.After(last) {
				last = e.Expires
			}
		}
	}
	if len(live) >= max {
		return fmt.Errorf("%d submissions already wait for this browser's login: %w", len(live), ErrLimit)
	}
	live = append(live, pendingEntry{ID: id, Expires: expires})
	if err := st.setRecord(ctx, nsPending, owner, live, last.Sub(now)); err != nil {
		return fmt.Errorf("reserve pending: %w", err)
	}
	return nil
}

// ReleasePending forgets stash id in owner's list (it was replayed or
// discarded). A failure only leaves the entry to expire.
func (st *Store) ReleasePending(ctx context.Context, owner, id string, now time.Time) error {
	key, err := entryKey(nsPending, owner)
	if err != nil {
		return nil
	}
	sealed, err := st.b.Get(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("release pending: %w", err)
	}
	var list []pendingEntry
	if err := st.open(key, sealed, &list); err != nil {
		return st.b.Delete(ctx, key)
	}
	live := list[:0]
	var last time.Time
	for _, e := range list {
		if e.ID != id && e.Expires.After(now) {
			live = append(live, e)
			if e.Expires.After(last) {
				last = e.Expires
			}
		}
	}
	if len(live) == 0 {
		return st.b.Delete(ctx, key)
	}
	return st.setRecord(ctx, nsPending, owner, live, last.Sub(now))
}

// UsageReporter is implemented by backends that can say how many bytes
// they hold, so the gateway can stop keeping new submissions at a budget.
type UsageReporter interface {
	// Usage returns the bytes the backend holds now: for the file store the
	// bytes in use in its database file, for Redis its used_memory.
	Usage(ctx context.Context) (int64, error)
}

// Usage returns the bytes the backend holds, and false when the backend
// cannot tell.
func (st *Store) Usage(ctx context.Context) (int64, bool, error) {
	u, ok := st.b.(UsageReporter)
	if !ok {
		return 0, false, nil
	}
	n, err := u.Usage(ctx)
	return n, true, err
}
