package gateway

import (
	"context"
	"log/slog"
	"time"
)

// pendingStore is what the per-browser bound of waiting submissions needs
// of the store.
type pendingStore interface {
	ReservePending(ctx context.Context, owner, id string, max int, expires, now time.Time) error
	ReleasePending(ctx context.Context, owner, id string, now time.Time) error
}

// pendingList bounds how many submissions one browser may have waiting for
// a login (Options.StashMaxPending): the interceptor reserves a place, the
// replayer frees it once the submission is consumed.
type pendingList struct {
	store pendingStore
	max   int // 0: no bound
	ttl   time.Duration
	now   func() time.Time
	log   *slog.Logger
}

// reserve takes a place for stash id of owner; it fails with
// session.ErrLimit when the browser has max waiting.
func (p *pendingList) reserve(ctx context.Context, owner, id string) error {
	if p.max <= 0 {
		return nil
	}
	now := p.now()
	return p.store.ReservePending(ctx, owner, id, p.max, now.Add(p.ttl), now)
}

// release forgets a stash in its browser's pending list. A failure only
// keeps the place taken until the stash's TTL.
func (p *pendingList) release(ctx context.Context, owner, id string) {
	if p.max <= 0 {
		return
	}
	if err := p.store.ReleasePending(context.WithoutCancel(ctx), owner, id, p.now()); err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "releasing a pending stash failed", slog.String("error", err.Error()))
	}
}
