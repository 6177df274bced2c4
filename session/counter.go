package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Counters is implemented by backends that keep counters shared by every
// process using the backend (both of postern's do), so that limits hold
// across replicas. A counter is a set of integer slots under a key, apart
// from records and blobs.
type Counters interface {
	// AddCounter, in one atomic step: drops the counter's slots numbered
	// below oldest and sums the rest; if delta > 0, limit >= 0 and
	// sum+delta > limit, it changes nothing and returns (sum, false);
	// otherwise it adds delta to slot (unless slot < oldest), makes the
	// counter live at least ttl from now, and returns the new sum and
	// true. A delta of 0 only reads.
	AddCounter(ctx context.Context, key string, slot, oldest, delta, limit int64, ttl time.Duration) (int64, bool, error)
	// DeleteCounter removes a counter; a missing one is not an error.
	DeleteCounter(ctx context.Context, key string) error
}

// ErrNoCounters means the backend keeps no shared counters.
var ErrNoCounters = errors.New("backend keeps no shared counters")

// nsLimit is the namespace of the counters of limits.
const nsLimit = "lim:"

// windowSlots is how many slots a Window is cut into: its count forgets
// old events a tenth of the window at a time.
const windowSlots = 10

// Window counts events over a sliding window of time, per id, in the
// store: every replica sharing the backend sees the same counts, and each
// change is one atomic step of the backend (a bbolt transaction, a Redis
// script). The count at time t is of the events added during about the
// last Length before t (to within one slot, a tenth of Length).
type Window struct {
	st     *Store
	name   string
	length time.Duration
	slot   time.Duration
}

// Window returns the counter family name (letters, digits, '-') whose
// counts span length.
func (st *Store) Window(name string, length time.Duration) *Window {
	slot := max(length/windowSlots, time.Millisecond)
	return &Window{st: st, name: name, length: slot * windowSlots, slot: slot}
}

// Length is how far back the window counts.
func (w *Window) Length() time.Duration { return w.length }

// Add counts n events for id at now, unless the count would then exceed
// limit (limit < 0: no limit): then nothing is counted and ok is false. It
// returns the count (with n when counted).
func (w *Window) Add(ctx context.Context, id string, n, limit int64, now time.Time) (count int64, ok bool, err error) {
	return w.add(ctx, id, n, limit, now, now)
}

// Count returns the count for id at now.
func (w *Window) Count(ctx context.Context, id string, now time.Time) (int64, error) {
	n, _, err := w.add(ctx, id, 0, -1, now, now)
	return n, err
}

// Release takes back n events counted for id by an Add at the time at
// (it did not happen after all). Events already out of the window are not
// taken back twice.
func (w *Window) Release(ctx context.Context, id string, n int64, at, now time.Time) error {
	_, _, err := w.add(ctx, id, -n, -1, at, now)
	return err
}

// Reset forgets every event counted for id.
func (w *Window) Reset(ctx context.Context, id string) error {
	c, ok := w.st.b.(Counters)
	if !ok {
		return ErrNoCounters
	}
	if err := c.DeleteCounter(ctx, w.key(id)); err != nil {
		return fmt.Errorf("reset %s counter: %w", w.name, err)
	}
	return nil
}

func (w *Window) add(ctx context.Context, id string, delta, limit int64, at, now time.Time) (int64, bool, error) {
	c, ok := w.st.b.(Counters)
	if !ok {
		return 0, false, ErrNoCounters
	}
	cur := now.UnixNano() / int64(w.slot)
	slot := at.UnixNano() / int64(w.slot)
	// One slot more than the window lives on past its end.
	n, added, err := c.AddCounter(ctx, w.key(id), slot, cur-windowSlots+1, delta, limit, w.length+w.slot)
	if err != nil {
		return 0, false, fmt.Errorf("%s counter: %w", w.name, err)
	}
	return max(n, 0), added, nil
}

// key names id's counter. Ids (client addresses, user names) are hashed:
// they may be long or not ASCII, and the store need not hold them in clear.
func (w *Window) key(id string) string {
	sum := sha256.Sum256([]byte(w.name + "\x00" + id))
	return nsLimit + w.name + ":" + hex.EncodeToString(sum[:16])
}
