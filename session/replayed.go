package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// nsReplayed marks stashes that were consumed, so a late completion (the
// login form submitted a second time) can tell "sent already" from
// "expired".
const nsReplayed = "done:"

// MarkReplayed records, for ttl, that the stash id was consumed.
func (st *Store) MarkReplayed(ctx context.Context, id string, ttl time.Duration) error {
	key, err := entryKey(nsReplayed, id)
	if err != nil {
		return fmt.Errorf("mark replayed: %w", err)
	}
	if err := st.b.Set(ctx, key, []byte{1}, ttl); err != nil {
		return fmt.Errorf("mark replayed: %w", err)
	}
	return nil
}

// Replayed reports whether the stash id was consumed within the last ttl
// given to MarkReplayed.
func (st *Store) Replayed(ctx context.Context, id string) (bool, error) {
	key, err := entryKey(nsReplayed, id)
	if err != nil {
		return false, nil
	}
	_, err = st.b.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("replayed: %w", err)
}
