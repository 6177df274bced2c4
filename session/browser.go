package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// nsBrowser records, for a browser id retired at login, the id that took
// its place.
const nsBrowser = "bid:"

// RetireBrowser records that browser id old is replaced by successor, for
// ttl (at least as long as anything bound to old may still be used). It is
// one atomic call (SetNX): an id is retired once, and the first successor
// wins. It returns the successor now on record: successor itself, or the
// one a concurrent login in another tab of the same browser recorded first,
// which the caller should then adopt.
//
// A retired id no longer owns anything by itself: what was bound to old
// (stashes waiting for this login) belongs to the successor, and a copy of
// the old cookie (a planted one) is worth nothing.
func (st *Store) RetireBrowser(ctx context.Context, old, successor string, ttl time.Duration) (string, error) {
	key, err := entryKey(nsBrowser, old)
	if err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	if successor == "" {
		return "", errors.New("retire browser: empty successor")
	}
	sealed, err := st.seal(key, successor)
	if err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	cur, stored, err := st.b.SetNX(ctx, key, sealed, ttl)
	if err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	if stored {
		return successor, nil
	}
	var got string
	if err := st.open(key, cur, &got); err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	return got, nil
}

// SuccessorOf returns the browser id that replaced old at a login, or
// ErrNotFound if old was never retired (or the record expired).
func (st *Store) SuccessorOf(ctx context.Context, old string) (string, error) {
	key, err := entryKey(nsBrowser, old)
	if err != nil {
		return "", fmt.Errorf("successor of browser: %w: %w", ErrNotFound, err)
	}
	sealed, err := st.b.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("successor of browser: %w", err)
	}
	var got string
	if err := st.open(key, sealed, &got); err != nil {
		return "", fmt.Errorf("successor of browser: %w", err)
	}
	return got, nil
}
