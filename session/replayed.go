package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// nsReplayed records how far a consumed stash got, so a late completion
// (the login form submitted a second time) can tell "sent already" from
// "expired", and a page waiting for the answer knows whether one will come.
const nsReplayed = "done:"

// ReplayMark is how far a consumed stash got, in the marker the gateway
// wrote before the replay state machine (Replay) kept it in the stash
// itself. It goes away with MarkReplayed once the gateway no longer uses it.
type ReplayMark byte

const (
	// NotReplayed: no record (never consumed, or the record expired).
	NotReplayed ReplayMark = iota
	// Replayed: the upstream has answered; the answer is being kept.
	Replayed
	// Settled: whatever can be shown of the answer is kept or was shown;
	// nothing more will come.
	Settled
)

// MarkReplayed records, for ttl, how far the stash id got.
func (st *Store) MarkReplayed(ctx context.Context, id string, state ReplayMark, ttl time.Duration) error {
	key, err := entryKey(nsReplayed, id)
	if err != nil {
		return fmt.Errorf("mark replayed: %w", err)
	}
	if err := st.b.Set(ctx, key, []byte{byte(state)}, ttl); err != nil {
		return fmt.Errorf("mark replayed: %w", err)
	}
	return nil
}

// ReplayStateOf returns how far the stash id got.
func (st *Store) ReplayStateOf(ctx context.Context, id string) (ReplayMark, error) {
	key, err := entryKey(nsReplayed, id)
	if err != nil {
		return NotReplayed, nil
	}
	v, err := st.b.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return NotReplayed, nil
	case err != nil:
		return NotReplayed, fmt.Errorf("replay state: %w", err)
	case len(v) != 1:
		return Settled, nil
	}
	return ReplayMark(v[0]), nil
}
