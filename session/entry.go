package session

import (
	"context"
	"io"
	"time"
)

// Entry is a stash as a Backend keeps it: one entry per stash, the single
// source of truth of its replay. Bodies are kept beside it and opened with
// OpenBody.
type Entry struct {
	// Meta is the sealed request (Stored), written by PutEntry and never
	// changed.
	Meta []byte
	// State is the plaintext replay state, which only Store reads; backends
	// compare it byte for byte.
	State []byte
	// Answer is the sealed kept answer (Result), nil until PutAnswer.
	Answer []byte
}

// Bodies names the bodies of an entry, as a set.
type Bodies uint8

const (
	// BodyStash is the submission's body, written by PutEntry.
	BodyStash Bodies = 1 << iota
	// BodyAnswer is the kept answer's body, written by PutAnswer.
	BodyAnswer
)

// Change is what SwapEntry and PutAnswer do besides replacing the state, in
// the same atomic step.
type Change struct {
	// Free removes these bodies at once (disk or memory returned); the entry
	// itself stays until it expires.
	Free Bodies
	// Keep makes the entry and its remaining bodies live at least this long
	// from now; zero leaves the expiry as it is.
	Keep time.Duration
}

// Decide is a transition of the replay state machine: given the entry as it
// is, it returns the next state and what else changes, or an error (a
// refusal: nothing is changed, and the error is returned as it is). A
// backend may call it more than once (one that checks optimistically calls
// it again with the entry as it is now), so it must have no side effects.
type Decide func(e Entry) (next []byte, ch Change, err error)

// Entries is the part of a Backend that keeps stashes as entries with a
// replay state. Each method is one atomic step, durable before it returns
// (a committed, synced transaction; a script acknowledged by the replicas
// the store is configured to wait for). Store builds the state machine on
// it: every rule (owner, lease token, allowed transition) is checked by a
// Decide against exactly the state that is then replaced, so a refusal
// changes nothing and two racing transitions are ordered.
type Entries interface {
	// PutEntry stores a new entry under key: meta, the initial state, and
	// the body streamed from body (at most limit bytes, else ErrTooLarge and
	// nothing kept; a failing reader or context leaves nothing either). It
	// becomes visible only once complete and expires ttl after that. An
	// entry already under key is replaced. It returns the body's length.
	PutEntry(ctx context.Context, key string, meta, state []byte, body io.Reader, limit int64, ttl time.Duration) (int64, error)
	// ReadEntry returns the entry under key, or ErrNotFound if it is missing
	// or expired. It changes nothing.
	ReadEntry(ctx context.Context, key string) (Entry, error)
	// UpdateEntry applies decide to the entry under key in one atomic step:
	// the state decide was given is replaced by the one it returns, and ch
	// applied, only if no other change came between. It returns the entry
	// decide was last given (also with decide's error), or ErrNotFound.
	UpdateEntry(ctx context.Context, key string, decide Decide) (Entry, error)
	// PutAnswer streams body (at most limit bytes, else ErrTooLarge) into a
	// new answer body, then applies decide like UpdateEntry and, in that
	// same step, sets the entry's Answer to answer (an earlier answer and
	// its body are replaced). If decide refuses, what was written is
	// removed. It returns the body's length.
	PutAnswer(ctx context.Context, key string, answer []byte, body io.Reader, limit int64, decide Decide) (int64, error)
	// OpenBody returns a reader of one body of the entry (BodyStash or
	// BodyAnswer), streamed, never whole in memory. A body freed or never
	// written is ErrNotFound. The caller closes it.
	OpenBody(ctx context.Context, key string, which Bodies) (io.ReadCloser, error)
}
