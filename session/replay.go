package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Refusals of the replay state machine. Each means nothing was changed.
var (
	// ErrNotOwner means the stash belongs to another browser.
	ErrNotOwner = errors.New("stash belongs to another browser")
	// ErrLeaseLost means the lease token no longer holds the stash: its
	// lease lapsed and another sender took it, or it was given back.
	ErrLeaseLost = errors.New("lease lost")
	// ErrState means the transition is not allowed from the stash's current
	// state; the Replay returned with it (or ReplayOf) says where it is.
	ErrState = errors.New("not allowed in this replay state")
)

// ReplayState is where a stash is in its replay:
//
//	pending --Lease--> leased --MarkSent--> sent --Answer--> answered --TakeAnswer--> settled
//	leased, lease lapsed: Lease takes it again
//	sent, lease lapsed: ambiguous; only Resend (to leased) or Discard
//	leased|sent --Unlease--> pending; leased|sent|answered --Settle--> settled
type ReplayState uint8

const (
	// StatePending: kept, waiting for its login.
	StatePending ReplayState = iota + 1
	// StateLeased: handed to one sender, which holds a lease token.
	StateLeased
	// StateSent: bytes may have reached the app.
	StateSent
	// StateAnswered: the app's answer is kept, to be shown once.
	StateAnswered
	// StateSettled: nothing more will happen; the bodies are freed.
	StateSettled
)

// String names the state as the documentation does.
func (s ReplayState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateLeased:
		return "leased"
	case StateSent:
		return "sent"
	case StateAnswered:
		return "answered"
	case StateSettled:
		return "settled"
	}
	return fmt.Sprintf("ReplayState(%d)", uint8(s))
}

// Outcomes of a settled stash the Store itself writes; Settle takes any
// short word from its caller.
const (
	OutcomeShown     = "shown"     // TakeAnswer: the kept answer was shown
	OutcomeDiscarded = "discarded" // Discard: the person chose not to send it
)

// Replay is the plaintext state of one stash.
type Replay struct {
	State        ReplayState
	LeaseExpires time.Time // leased/sent: when the current lease lapses
	SentAt       time.Time // when it was (last) handed to the app
	Attempts     int       // sends begun (MarkSent calls)
	Outcome      string    // settled: why
}

// LeaseLive reports whether a leased or sent stash's lease holds at now.
func (r Replay) LeaseLive(now time.Time) bool {
	return (r.State == StateLeased || r.State == StateSent) && now.Before(r.LeaseExpires)
}

// Ambiguous reports whether the stash may have reached the app and its
// sender is gone: it is re-sent only by Resend.
func (r Replay) Ambiguous(now time.Time) bool {
	return r.State == StateSent && !r.LeaseLive(now)
}

// replayRecord is Replay as stored: the owner and the lease token as keyed
// hashes (Sealer.Tag), never in the clear. JSON of a struct is
// deterministic, which the byte-for-byte compare of a Backend relies on.
type replayRecord struct {
	V        int         `json:"v"`
	State    ReplayState `json:"s"`
	Owner    []byte      `json:"o"`
	Token    []byte      `json:"t,omitempty"`
	Expires  int64       `json:"e,omitempty"` // unix ns
	Lease    int64       `json:"d,omitempty"` // ns: what Renew and MarkSent extend by
	SentAt   int64       `json:"sa,omitempty"`
	Attempts int         `json:"n,omitempty"`
	Outcome  string      `json:"out,omitempty"`
}

const replayRecordVersion = 1

func decodeReplay(b []byte) (replayRecord, error) {
	var r replayRecord
	if err := json.Unmarshal(b, &r); err != nil || r.V != replayRecordVersion || r.State < StatePending || r.State > StateSettled {
		return replayRecord{}, fmt.Errorf("replay state: %w", ErrCorrupt)
	}
	// An empty tag is no tag: one form for both, as encode writes it.
	if len(r.Owner) == 0 {
		r.Owner = nil
	}
	if len(r.Token) == 0 {
		r.Token = nil
	}
	return r, nil
}

func (r replayRecord) encode() []byte {
	r.V = replayRecordVersion
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // a struct of plain fields always encodes
	}
	return b
}

func (r replayRecord) replay() Replay {
	out := Replay{State: r.State, Attempts: r.Attempts, Outcome: r.Outcome}
	if r.Expires != 0 {
		out.LeaseExpires = time.Unix(0, r.Expires)
	}
	if r.SentAt != 0 {
		out.SentAt = time.Unix(0, r.SentAt)
	}
	return out
}

// leased reports whether the record holds a lease (leased or sent) and,
// with live, whether that lease holds at now.
func (r replayRecord) leased(now time.Time) (held, live bool) {
	held = r.State == StateLeased || r.State == StateSent
	return held, held && now.UnixNano() < r.Expires
}

func (r *replayRecord) lease(tokenTag []byte, d time.Duration, now time.Time) {
	r.Token = tokenTag
	r.Lease = int64(d)
	r.Expires = now.Add(d).UnixNano()
}

func (r *replayRecord) settle(outcome string) {
	r.State = StateSettled
	r.Outcome = outcome
	r.Expires = 0
}
