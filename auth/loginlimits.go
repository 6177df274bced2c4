package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Window counts events per id over a sliding window of time, in a store
// every replica shares (session.Window). Add counts n unless the count
// would then exceed limit (limit < 0: none).
type Window interface {
	Add(ctx context.Context, id string, n, limit int64, now time.Time) (int64, bool, error)
	Count(ctx context.Context, id string, now time.Time) (int64, error)
	Release(ctx context.Context, id string, n int64, at, now time.Time) error
	Reset(ctx context.Context, id string) error
	// Length is how far back the window counts.
	Length() time.Duration
}

// LoginLimits are the budgets of failed logins within one window.
type LoginLimits struct {
	// PerAddress bounds failures from one client address, whatever the
	// user names: one address cannot spray guesses over many accounts.
	PerAddress int64
	// PerPair bounds failures for one user name from one address: the
	// back-off of one guesser at one account. A person who mistypes is
	// slowed only on their own address.
	PerPair int64
	// PerUser is how many failures for one user name, from all addresses
	// together, put the name under attack: then each address gets only
	// PerPairUnderAttack failures for it. The name itself is never locked:
	// an address that has not failed for it can always try.
	PerUser int64
	// PerPairUnderAttack replaces PerPair while the user name is under
	// attack.
	PerPairUnderAttack int64
}

// DefaultLoginLimits are postern's budgets, per window of
// DefaultLoginWindow.
var DefaultLoginLimits = LoginLimits{PerAddress: 20, PerPair: 5, PerUser: 50, PerPairUnderAttack: 2}

// DefaultLoginWindow is how long failed logins are remembered.
const DefaultLoginWindow = 15 * time.Minute

// LoginWindows are the three counts a LoginLimiter keeps, each a Window
// of its own in the shared store.
type LoginWindows struct {
	Address Window // per client address
	Pair    Window // per (user name, address)
	User    Window // per user name
}

// LoginLimiter limits failed local logins across every replica: its counts
// live in the store (LoginWindows), and each change is atomic there, so N
// replicas give an attacker no more tries than one.
//
// Only failures count, so people who type their password right are never
// slowed down. The limits are per address, per (user name, address), and,
// for a user name attacked from many addresses at once, a tighter per
// (user name, address) budget; never on the user name alone, so no one
// can lock a person out of their account by failing on purpose. Blocks end
// on their own: a failure is forgotten one window after it happened.
type LoginLimiter struct {
	w   LoginWindows
	lim LoginLimits
	now func() time.Time
}

// NewLoginLimiter returns a limiter over w with limits lim; now is the
// clock (time.Now if nil).
func NewLoginLimiter(w LoginWindows, lim LoginLimits, now func() time.Time) *LoginLimiter {
	if now == nil {
		now = time.Now
	}
	return &LoginLimiter{w: w, lim: lim, now: now}
}

// LoginAttempt is one login attempt, counted as a failure from the start
// (Begin), so that concurrent attempts cannot all pass a check made before
// any of them failed; a success takes the count back.
type LoginAttempt struct {
	// Allowed says whether the password may be checked.
	Allowed bool
	// Wait, when not allowed, is the earliest time after which it may be
	// (the oldest counted failure may leave the window by then).
	Wait time.Duration
	// Reason, when not allowed, names the limit that holds: "address",
	// "user_address" or "user_under_attack".
	Reason string

	l    *LoginLimiter
	user string
	addr string // AddrKey of the address
	at   time.Time
}

// Begin counts a login attempt for user from addr as a failure, unless a
// limit is reached: then nothing is counted and the attempt is not
// Allowed. An error means the store could not say (the caller fails
// closed).
func (l *LoginLimiter) Begin(ctx context.Context, user, addr string) (*LoginAttempt, error) {
	now := l.now()
	a := &LoginAttempt{l: l, user: user, addr: AddrKey(addr), at: now}
	refuse := func(reason string) (*LoginAttempt, error) {
		a.Wait, a.Reason = l.w.Address.Length()/10, reason
		return a, nil
	}
	if _, ok, err := l.w.Address.Add(ctx, a.addr, 1, l.lim.PerAddress, now); err != nil {
		return nil, fmt.Errorf("login limit: %w", err)
	} else if !ok {
		return refuse("address")
	}
	if user == "" {
		a.Allowed = true
		return a, nil
	}
	pairLimit, reason := l.lim.PerPair, "user_address"
	n, err := l.w.User.Count(ctx, user, now)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("login limit: %w", err), l.release(ctx, a, false))
	}
	if n >= l.lim.PerUser {
		pairLimit, reason = min(pairLimit, l.lim.PerPairUnderAttack), "user_under_attack"
	}
	if _, ok, err := l.w.Pair.Add(ctx, pairID(user, a.addr), 1, pairLimit, now); err != nil {
		return nil, errors.Join(fmt.Errorf("login limit: %w", err), l.release(ctx, a, false))
	} else if !ok {
		if err := l.release(ctx, a, false); err != nil {
			return nil, err
		}
		return refuse(reason)
	}
	if _, _, err := l.w.User.Add(ctx, user, 1, -1, now); err != nil {
		return nil, errors.Join(fmt.Errorf("login limit: %w", err), l.release(ctx, a, true))
	}
	a.Allowed = true
	return a, nil
}

// Succeeded takes back the attempt's count and forgets the person's own
// earlier failures from this address (typos). The address's other
// failures and the name's failures from elsewhere stay, so one valid
// account does not reset the budget of an address guessing others, nor
// end an attack on the name.
func (a *LoginAttempt) Succeeded(ctx context.Context) error {
	if !a.Allowed || a.l == nil {
		return nil
	}
	if err := a.l.release(ctx, a, false); err != nil {
		return err
	}
	if a.user == "" {
		return nil
	}
	if err := a.l.w.Pair.Reset(ctx, pairID(a.user, a.addr)); err != nil {
		return fmt.Errorf("login limit: %w", err)
	}
	if err := a.l.w.User.Release(ctx, a.user, 1, a.at, a.l.now()); err != nil {
		return fmt.Errorf("login limit: %w", err)
	}
	return nil
}

// release takes back the address's count of a, and the pair's if pair.
func (l *LoginLimiter) release(ctx context.Context, a *LoginAttempt, pair bool) error {
	now := l.now()
	if err := l.w.Address.Release(ctx, a.addr, 1, a.at, now); err != nil {
		return fmt.Errorf("login limit: %w", err)
	}
	if pair {
		if err := l.w.Pair.Release(ctx, pairID(a.user, a.addr), 1, a.at, now); err != nil {
			return fmt.Errorf("login limit: %w", err)
		}
	}
	return nil
}

func pairID(user, addrKey string) string {
	return addrKey + "\x00" + user
}
