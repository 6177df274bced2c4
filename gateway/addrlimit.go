package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/postern/postern/auth"
)

// reserveGrain is how many body bytes of a submission of unknown length
// (chunked) are counted against the limits at a time, ahead of reading
// them: a few store round trips per MiB, and a body is stopped within one
// grain of a limit.
const reserveGrain = 256 << 10

// inFlightWindow is how long bytes counted in flight stay counted if the
// process that counted them dies before taking them back: longer than an
// upload may take (the server reads a request for at most 5 minutes).
const inFlightWindow = 15 * time.Minute

// budgetID is the one id of the store-wide count of bytes in flight.
const budgetID = "all"

// counter is a sliding-window count per id in the store, shared by the
// replicas (session.Window).
type counter interface {
	Add(ctx context.Context, id string, n, limit int64, now time.Time) (int64, bool, error)
	Release(ctx context.Context, id string, n int64, at, now time.Time) error
}

// usage is how many bytes the store holds (session.Store.Usage).
type usage interface {
	Usage(ctx context.Context) (int64, bool, error)
}

// addrLimits bound what one client address may have kept without a
// session, how many submissions and how many body bytes, so one address
// cannot fill the store for everyone; and they make the store budget hold
// for bodies of unknown length and for submissions racing each other.
// Every count is in the store, so the limits hold across replicas, and
// every step is atomic there.
//
// A submission's body bytes are counted as they stream in, a grain ahead
// of reading them: the per-address count and the store-wide count of bytes
// in flight, checked against the budget less the store's usage at that
// moment. So concurrent submissions cannot together go past the budget by
// more than about a grain each (bytes in flight are counted twice, once in
// the usage as they are written, once in flight: the check errs on the
// side of refusing).
type addrLimits struct {
	maxCount int64 // submissions per address in a window of --stash-ttl; 0: none
	maxBytes int64 // body bytes per address in that window; 0: none
	budget   int64 // --store-budget; 0: none

	count, bytes counter // per address
	inFlight     counter // store-wide, one id
	usage        usage
	metrics      *metrics
	log          *slog.Logger
	now          func() time.Time
}

// limitError is a submission refused by a limit of the store.
type limitError struct {
	reason string // metric label: stash_address_count, stash_address_bytes, stash_budget
}

func (e *limitError) Error() string { return "submission refused: " + e.reason }

// reservation is what one submission has counted: released if it is not
// kept, trimmed to what it used if it is.
type reservation struct {
	l     *addrLimits
	addr  string
	at    time.Time
	count bool
	bytes int64 // counted against the address
	fly   int64 // counted in flight
}

// begin counts one more submission for addr (an auth.AddrKey) and, when
// size >= 0, its whole declared body.
func (l *addrLimits) begin(ctx context.Context, addr string, size int64) (*reservation, error) {
	res := &reservation{l: l, addr: addr, at: l.now()}
	if l.maxCount > 0 {
		_, ok, err := l.count.Add(ctx, addr, 1, l.maxCount, res.at)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &limitError{reason: "stash_address_count"}
		}
		res.count = true
	}
	if size > 0 {
		if err := res.grow(ctx, size); err != nil {
			return nil, errors.Join(err, res.release(ctx))
		}
	}
	return res, nil
}

// grow counts n more body bytes against the address and the budget.
func (res *reservation) grow(ctx context.Context, n int64) error {
	l := res.l
	if l.maxBytes > 0 {
		_, ok, err := l.bytes.Add(ctx, res.addr, n, l.maxBytes, res.at)
		if err != nil {
			return err
		}
		if !ok {
			return &limitError{reason: "stash_address_bytes"}
		}
		res.bytes += n
	}
	if l.budget > 0 {
		used, known, err := l.usage.Usage(ctx)
		if err != nil {
			return err
		}
		if known {
			flying, ok, err := l.inFlight.Add(ctx, budgetID, n, max(l.budget-used, 0), res.at)
			if err != nil {
				return err
			}
			if !ok {
				return &limitError{reason: "stash_budget"}
			}
			res.fly += n
			// used may be stale: a submission that completed since it was
			// read moved its bytes from in flight to the store, and the cap
			// above then let these through twice. Read it again now that
			// these bytes are counted: a submission completing meanwhile is
			// seen in both (it refuses, never overshoots).
			if used, _, err = l.usage.Usage(ctx); err != nil {
				return err
			}
			if used+flying > l.budget {
				return &limitError{reason: "stash_budget"}
			}
		}
	}
	return nil
}

// release takes back everything counted: the submission was not kept.
func (res *reservation) release(ctx context.Context) error {
	return res.settle(ctx, false, 0)
}

// kept ends the reservation of a submission that was kept with n body
// bytes: its count and those bytes stay counted against the address until
// they leave the window (--stash-ttl, the submission's own life); the rest
// is taken back.
func (res *reservation) kept(ctx context.Context, n int64) error {
	return res.settle(ctx, true, n)
}

func (res *reservation) settle(ctx context.Context, kept bool, n int64) error {
	ctx = context.WithoutCancel(ctx)
	l, now := res.l, res.l.now()
	var errs []error
	if res.count && !kept {
		errs = append(errs, l.count.Release(ctx, res.addr, 1, res.at, now))
	}
	extra := res.bytes
	if kept {
		extra = max(res.bytes-n, 0)
	}
	if extra > 0 {
		errs = append(errs, l.bytes.Release(ctx, res.addr, extra, res.at, now))
	}
	// Once written, kept bytes are in the store's usage: in flight no more.
	if res.fly > 0 {
		errs = append(errs, l.inFlight.Release(ctx, budgetID, res.fly, res.at, now))
	}
	res.count, res.bytes, res.fly = false, 0, 0
	return errors.Join(errs...)
}

// meteredBody counts a body of unknown length against its reservation as
// it is read, and stops it with a *limitError at a limit. Bytes are counted
// before they go on to the store: a grain ahead while there is room, and
// exactly what was read near a limit, so a body that fits is never refused
// for counting ahead.
type meteredBody struct {
	ctx  context.Context
	r    io.Reader
	res  *reservation
	room int64 // counted and not yet read
	err  error
}

func (m *meteredBody) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if m.room > 0 && int64(len(p)) > m.room {
		p = p[:m.room]
	}
	n, err := m.r.Read(p)
	if need := int64(n) - m.room; need > 0 {
		grain := max(reserveGrain, need)
		gerr := m.res.grow(m.ctx, grain)
		var le *limitError
		if errors.As(gerr, &le) && grain > need {
			grain, gerr = need, m.res.grow(m.ctx, need)
		}
		if gerr != nil {
			m.err = fmt.Errorf("counting the body: %w", gerr)
			return 0, m.err
		}
		m.room += grain
	}
	m.room -= int64(n)
	return n, err
}

// refusal is the page for a submission a limit refused; it is counted and
// logged with the client's address.
func (l *addrLimits) refusal(r *http.Request, le *limitError, addr string, login string) *httpError {
	l.metrics.refused.WithLabelValues(le.reason).Inc()
	l.metrics.stashes.WithLabelValues(le.reason).Inc()
	l.log.LogAttrs(r.Context(), slog.LevelWarn, "submission not kept: limit reached",
		slog.String("limit", le.reason), slog.String("addr", addr), slog.String("path", r.URL.Path))
	he := &httpError{Status: http.StatusTooManyRequests, Code: le.reason, Title: "Submission not kept",
		RetryAfter: time.Minute, Login: login}
	switch le.reason {
	case "stash_address_count":
		he.Message = "You are not logged in, and " + strconv.FormatInt(l.maxCount, 10) +
			" submissions from your network address are already waiting for a login, so this one was not kept. " +
			"Log in first, then send it again."
	case "stash_address_bytes":
		he.Message = "You are not logged in, and submissions from your network address already take up the " +
			formatBytes(l.maxBytes) + " the gateway keeps for one address while people log in, so this one was not kept. " +
			"Log in first, then send it again."
	default:
		he.Status = http.StatusServiceUnavailable
		he.Message = "You are not logged in, and the gateway cannot keep more submissions right now. " +
			"It was not kept. Log in first, then send it again."
	}
	return he
}

// addrKeyOf is the key a request's client address is counted under.
func addrKeyOf(clientAddr string) string { return auth.AddrKey(clientAddr) }
