package session

import (
	"context"
	"fmt"
	"time"
)

// nsSummary holds what the login page says about a kept submission.
const nsSummary = "sum:"

// StashSummary is what a person is told about their kept submission while
// they log in ("POST /checkout will be sent once you log in"): its method
// and path, never its query or body. It is kept beside the stash, so the
// login page can say it without taking the stash.
type StashSummary struct {
	Method string
	Path   string
	Owner  string // BrowserID of the browser that submitted it
}

// SaveStashSummary keeps the summary of stash id for ttl (the stash's).
func (st *Store) SaveStashSummary(ctx context.Context, id string, s StashSummary, ttl time.Duration) error {
	if err := st.setRecord(ctx, nsSummary, id, s, ttl); err != nil {
		return fmt.Errorf("save stash summary: %w", err)
	}
	return nil
}

// StashSummaryOf returns the summary of stash id, or ErrNotFound.
func (st *Store) StashSummaryOf(ctx context.Context, id string) (StashSummary, error) {
	var s StashSummary
	key, err := entryKey(nsSummary, id)
	if err != nil {
		return s, fmt.Errorf("stash summary: %w: %w", ErrNotFound, err)
	}
	sealed, err := st.b.Get(ctx, key)
	if err != nil {
		return s, fmt.Errorf("stash summary: %w", err)
	}
	if err := st.open(key, sealed, &s); err != nil {
		return StashSummary{}, fmt.Errorf("stash summary: %w", err)
	}
	return s, nil
}
