package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// nsLease holds short leases: who among the processes sharing the store may
// do a thing (refresh one session's tokens) right now.
const nsLease = "lease:"

// Lease is a held lease; Release gives it up.
type Lease struct {
	key   string
	token []byte
}

// AcquireLease takes the lease name for ttl if no one holds it, atomically
// across every process sharing the store (bbolt transaction; Redis SET NX
// PX). It returns false, and no Lease, while another holder's lease is live.
// A holder that dies loses the lease when ttl ends.
func (st *Store) AcquireLease(ctx context.Context, name string, ttl time.Duration) (*Lease, bool, error) {
	key, err := entryKey(nsLease, name)
	if err != nil {
		return nil, false, fmt.Errorf("acquire lease: %w", err)
	}
	// The value is only a random token telling holders apart; it names and
	// opens nothing, so it is not sealed.
	token := []byte(NewID())
	_, ok, err := st.b.SetNX(ctx, key, token, ttl)
	if err != nil {
		return nil, false, fmt.Errorf("acquire lease: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return &Lease{key: key, token: token}, true, nil
}

// Release gives the lease up, if it is still this holder's (it may have
// lapsed and been taken by another).
func (st *Store) Release(ctx context.Context, l *Lease) error {
	if l == nil {
		return nil
	}
	if _, err := st.b.DeleteIf(ctx, l.key, l.token); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// Held reports whether a live lease name exists (held by anyone).
func (st *Store) Held(ctx context.Context, name string) (bool, error) {
	key, err := entryKey(nsLease, name)
	if err != nil {
		return false, fmt.Errorf("lease: %w", err)
	}
	switch _, err := st.b.Get(ctx, key); {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("lease: %w", err)
	}
}
