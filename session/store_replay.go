package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// MaxLease is the longest lease Lease, Resend and Renew accept: a sender
// that dies is noticed (its lease lapses) within this long of its last
// renewal.
const MaxLease = 15 * time.Second

// The replay state machine. Each method below is one Backend.UpdateEntry
// (or PutAnswer): its decide function checks, in this order, the owner, the
// lease token and the state, against exactly the state it then replaces,
// so a refusal changes nothing and concurrent callers are ordered.

// Lease hands the stash id to one sender, identified by token (random, one
// per send attempt), for lease: pending, or leased with a lapsed lease
// (its sender died before sending anything), becomes leased. It returns
// the request, a reader of its body (the caller closes it) and the new
// Replay. From any other state it returns the current Replay and an error
// wrapping ErrState. A wrong owner is ErrNotOwner; a missing or expired
// stash ErrNotFound.
func (st *Store) Lease(ctx context.Context, id, owner, token string, lease time.Duration) (Stored, io.ReadCloser, Replay, error) {
	return st.leaseFrom(ctx, "lease", id, owner, token, lease, func(r replayRecord, now time.Time) bool {
		held, live := r.leased(now)
		return r.State == StatePending || (held && r.State == StateLeased && !live)
	})
}

// Resend hands an ambiguous stash (sent, its lease lapsed: it may have
// reached the app) to a new sender, like Lease: the person asked for it, or
// the route's app honours Idempotency-Key. The request keeps its
// IdempotencyKey. From any other state it is ErrState.
func (st *Store) Resend(ctx context.Context, id, owner, token string, lease time.Duration) (Stored, io.ReadCloser, Replay, error) {
	return st.leaseFrom(ctx, "resend", id, owner, token, lease, func(r replayRecord, now time.Time) bool {
		return Replay{State: r.State, LeaseExpires: time.Unix(0, r.Expires)}.Ambiguous(now)
	})
}

func (st *Store) leaseFrom(ctx context.Context, op, id, owner, token string, lease time.Duration, allowed func(replayRecord, time.Time) bool) (Stored, io.ReadCloser, Replay, error) {
	var req Stored
	if err := checkLease(token, lease); err != nil {
		return req, nil, Replay{}, fmt.Errorf("%s: %w", op, err)
	}
	var out replayRecord
	e, err := st.update(ctx, op, id, func(key string, r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkOwner(key, owner, r); err != nil {
			return r, Change{}, err
		}
		if !allowed(r, now) {
			return r, Change{}, ErrState
		}
		r.State = StateLeased
		r.lease(st.s.Tag(key+"/lease", token), lease, now)
		out = r
		// The stash outlives its ttl for as long as a replay may take.
		return r, Change{Keep: TakenTTL}, nil
	})
	if err != nil {
		return req, nil, current(e), err
	}
	key, _ := entryKey(nsStash, id)
	if err := st.open(key, e.Meta, &req); err != nil {
		return Stored{}, nil, out.replay(), fmt.Errorf("%s: %w", op, err)
	}
	body, err := st.b.OpenBody(ctx, key, BodyStash)
	if err != nil {
		return Stored{}, nil, out.replay(), fmt.Errorf("%s: body: %w", op, err)
	}
	return req, &openedBody{Reader: st.s.OpenStream(key, body), c: body}, out.replay(), nil
}

// Renew extends the lease held by token to lease from now. The sender calls
// it every few seconds while it is alive (leased or sent). A token that no
// longer holds the stash gets ErrLeaseLost; a stash that moved on
// (answered, settled) ErrState.
func (st *Store) Renew(ctx context.Context, id, token string, lease time.Duration) error {
	if err := checkLease(token, lease); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	_, err := st.update(ctx, "renew", id, func(key string, r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkToken(key, token, r, StateLeased, StateSent); err != nil {
			return r, Change{}, err
		}
		r.lease(r.Token, lease, now)
		return r, Change{}, nil
	})
	return err
}

// MarkSent records, durably, that the stash may now reach the app: leased
// becomes sent, SentAt is now, Attempts grows by one and the lease is
// renewed. The sender calls it before the first byte goes upstream, and
// sends nothing if it fails.
func (st *Store) MarkSent(ctx context.Context, id, token string) error {
	_, err := st.update(ctx, "mark sent", id, func(key string, r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkToken(key, token, r, StateLeased); err != nil {
			return r, Change{}, err
		}
		r.State = StateSent
		r.SentAt = now.UnixNano()
		r.Attempts++
		r.lease(r.Token, time.Duration(r.Lease), now)
		return r, Change{}, nil
	})
	if errors.Is(err, ErrUnavailable) {
		// Perhaps applied on a primary that the replicas did not confirm:
		// give the stash back so that, whichever copy survives, it is not
		// left "sent" for a send that never happened. Best effort; if
		// this fails too the lease lapses and the person is asked.
		_ = st.Unlease(context.WithoutCancel(ctx), id, token)
	}
	return err
}

// Unlease gives a leased or sent stash back (pending): none of it reached
// the app (the sender gave up before writing, or the connection to the app
// failed before anything was written). The next Lease takes it.
func (st *Store) Unlease(ctx context.Context, id, token string) error {
	_, err := st.update(ctx, "unlease", id, func(key string, r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkToken(key, token, r, StateLeased, StateSent); err != nil {
			return r, Change{}, err
		}
		r.State = StatePending
		r.Token, r.Expires, r.Lease = nil, 0, 0
		return r, Change{}, nil
	})
	return err
}

// Answer keeps the app's answer to a sent stash: res sealed, its body
// streamed from body and sealed (at most limit bytes, else ErrTooLarge and
// the stash stays sent). Sent becomes answered and the submission's body
// is freed (it is never sent again). It returns the body's length.
func (st *Store) Answer(ctx context.Context, id, token string, res Result, body io.Reader, limit int64) (int64, error) {
	key, err := entryKey(nsStash, id)
	if err != nil {
		return 0, fmt.Errorf("answer: %w: %w", ErrNotFound, err)
	}
	if limit < 0 {
		return 0, errors.New("answer: negative limit")
	}
	if res.Size >= 0 && res.Size > limit {
		return 0, fmt.Errorf("answer: declared %d bytes, limit %d: %w", res.Size, limit, ErrTooLarge)
	}
	name := answerName(key)
	sealedRes, err := st.seal(name, res)
	if err != nil {
		return 0, fmt.Errorf("answer: %w", err)
	}
	counted := &limitCounter{r: body, limit: limit, size: res.Size}
	sealedBody, err := st.s.SealStream(name, counted)
	if err != nil {
		return 0, fmt.Errorf("answer: %w", err)
	}
	decide := st.decider(key, func(r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkToken(key, token, r, StateSent); err != nil {
			return r, Change{}, err
		}
		r.State = StateAnswered
		r.Expires = 0
		return r, Change{Free: BodyStash, Keep: TakenTTL}, nil
	})
	if _, err := st.b.PutAnswer(ctx, key, sealedRes, sealedBody, SealedSize(limit), decide); err != nil {
		if counted.over {
			err = ErrTooLarge
		}
		return 0, fmt.Errorf("answer: %w", err)
	}
	return counted.n, nil
}

// Settle ends the replay held by token with outcome (a short word such as
// "redirected" or "failed", shown to a late visitor): leased, sent or
// answered becomes settled, and the bodies are freed at once. The small
// state record stays until the stash's ttl, so a late visit learns it.
func (st *Store) Settle(ctx context.Context, id, token, outcome string) error {
	_, err := st.update(ctx, "settle", id, func(key string, r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkToken(key, token, r, StateLeased, StateSent, StateAnswered); err != nil {
			return r, Change{}, err
		}
		r.settle(outcome)
		return r, Change{Free: BodyStash | BodyAnswer}, nil
	})
	return err
}

// TakeAnswer returns the kept answer of the stash id to its owner, once:
// answered becomes settled ("shown"). The owner is checked before anything
// changes. The caller reads the body and closes it; Close frees it.
func (st *Store) TakeAnswer(ctx context.Context, id, owner string) (Result, io.ReadCloser, error) {
	var res Result
	e, err := st.update(ctx, "take answer", id, func(key string, r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkOwner(key, owner, r); err != nil {
			return r, Change{}, err
		}
		if r.State != StateAnswered {
			return r, Change{}, ErrState
		}
		r.settle(OutcomeShown)
		return r, Change{}, nil
	})
	if err != nil {
		return res, nil, err
	}
	key, _ := entryKey(nsStash, id)
	name := answerName(key)
	free := func() error {
		_, err := st.b.UpdateEntry(context.WithoutCancel(ctx), key, func(cur Entry) ([]byte, Change, error) {
			return cur.State, Change{Free: BodyAnswer}, nil
		})
		return err
	}
	fail := func(err error) (Result, io.ReadCloser, error) {
		return Result{}, nil, errors.Join(fmt.Errorf("take answer: %w", err), free())
	}
	if err := st.open(name, e.Answer, &res); err != nil {
		return fail(err)
	}
	body, err := st.b.OpenBody(ctx, key, BodyAnswer)
	if err != nil {
		return fail(err)
	}
	return res, &freeingBody{Reader: st.s.OpenStream(name, body), c: body, free: free}, nil
}

// Discard settles a stash its owner chose not to send ("discarded"): from
// pending, or leased or sent with a lapsed lease. The bodies are freed.
func (st *Store) Discard(ctx context.Context, id, owner string) error {
	_, err := st.update(ctx, "discard", id, func(key string, r replayRecord, now time.Time) (replayRecord, Change, error) {
		if err := st.checkOwner(key, owner, r); err != nil {
			return r, Change{}, err
		}
		held, live := r.leased(now)
		if r.State != StatePending && (!held || live) {
			return r, Change{}, ErrState
		}
		r.settle(OutcomeDiscarded)
		r.Token = nil
		return r, Change{Free: BodyStash | BodyAnswer}, nil
	})
	return err
}

// ReplayOf returns the request and the replay state of the stash id to its
// owner, changing nothing (for pages: what was sent, and when).
func (st *Store) ReplayOf(ctx context.Context, id, owner string) (Stored, Replay, error) {
	var req Stored
	key, err := entryKey(nsStash, id)
	if err != nil {
		return req, Replay{}, fmt.Errorf("replay of: %w: %w", ErrNotFound, err)
	}
	e, err := st.b.ReadEntry(ctx, key)
	if err != nil {
		return req, Replay{}, fmt.Errorf("replay of: %w", err)
	}
	r, err := decodeReplay(e.State)
	if err != nil {
		return req, Replay{}, fmt.Errorf("replay of: %w", err)
	}
	if err := st.checkOwner(key, owner, r); err != nil {
		return req, Replay{}, fmt.Errorf("replay of: %w", err)
	}
	if err := st.open(key, e.Meta, &req); err != nil {
		return Stored{}, Replay{}, fmt.Errorf("replay of: %w", err)
	}
	return req, r.replay(), nil
}

// transition is one step of the state machine on a decoded record.
type transition func(key string, r replayRecord, now time.Time) (replayRecord, Change, error)

// update runs one transition as one Backend.UpdateEntry and returns the
// entry it was decided on.
func (st *Store) update(ctx context.Context, op, id string, t transition) (Entry, error) {
	key, err := entryKey(nsStash, id)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	}
	e, err := st.b.UpdateEntry(ctx, key, st.decider(key, func(r replayRecord, now time.Time) (replayRecord, Change, error) {
		return t(key, r, now)
	}))
	if err != nil {
		return e, fmt.Errorf("%s: %w", op, err)
	}
	return e, nil
}

func (st *Store) decider(key string, t func(replayRecord, time.Time) (replayRecord, Change, error)) Decide {
	return func(e Entry) ([]byte, Change, error) {
		r, err := decodeReplay(e.State)
		if err != nil {
			return nil, Change{}, err
		}
		next, ch, err := t(r, st.now())
		if err != nil {
			return nil, Change{}, err
		}
		return next.encode(), ch, nil
	}
}

func (st *Store) checkOwner(key, owner string, r replayRecord) error {
	if owner == "" || !st.s.CheckTag(key+"/owner", owner, r.Owner) {
		return ErrNotOwner
	}
	return nil
}

// checkToken checks that token holds the stash's lease and that the stash
// is in one of states.
func (st *Store) checkToken(key, token string, r replayRecord, states ...ReplayState) error {
	if token == "" || r.Token == nil || !st.s.CheckTag(key+"/lease", token, r.Token) {
		return ErrLeaseLost
	}
	for _, s := range states {
		if r.State == s {
			return nil
		}
	}
	return ErrState
}

func checkLease(token string, lease time.Duration) error {
	if token == "" {
		return errors.New("empty lease token")
	}
	if lease <= 0 || lease > MaxLease {
		return fmt.Errorf("lease %s: must be positive and at most %s", lease, MaxLease)
	}
	return nil
}

// current decodes the Replay of an entry returned with a refusal.
func current(e Entry) Replay {
	if e.State == nil {
		return Replay{}
	}
	r, err := decodeReplay(e.State)
	if err != nil {
		return Replay{}
	}
	return r.replay()
}

// answerName is the sealing name of a stash's kept answer, so the answer
// and the request never open as each other.
func answerName(key string) string { return key + "/answer" }

// freeingBody is a decrypting reader whose Close also frees the body in the
// store (once).
type freeingBody struct {
	io.Reader
	c    io.Closer
	free func() error
	once sync.Once
	err  error
}

func (f *freeingBody) Close() error {
	f.once.Do(func() { f.err = errors.Join(f.c.Close(), f.free()) })
	return f.err
}
