package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/session"
)

// Clock is a settable clock shared by the Stores of one test, so a lapsed
// lease needs no sleep.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// replayEnv is one backend with two Stores over it (two replicas) on one
// clock.
type replayEnv struct {
	b      session.Backend
	a, c   *session.Store // replica a and replica c
	clock  *Clock
	ctx    context.Context
	t      *testing.T
	sealer *session.Sealer
}

const owner = "browser-1"

// put stashes a submission of n bytes and returns its id and body.
func (e *replayEnv) put(n int) (string, []byte) {
	e.t.Helper()
	id := session.NewID()
	body := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
	req := session.Stored{
		Method: http.MethodPost, URL: "/checkout", Owner: owner, Size: int64(n),
		Header: http.Header{"Content-Type": {"text/plain"}}, Cookie: "app=1", IdempotencyKey: "idem-" + id,
	}
	if _, err := e.a.PutStash(e.ctx, id, req, bytes.NewReader(body), 1<<30, time.Hour); err != nil {
		e.t.Fatalf("PutStash: %v", err)
	}
	return id, body
}

// raw returns the entry's stored state, to show a refusal changed nothing.
func (e *replayEnv) raw(id string) string {
	e.t.Helper()
	en, err := e.b.ReadEntry(e.ctx, "stash:"+id)
	if err != nil {
		e.t.Fatalf("ReadEntry: %v", err)
	}
	return fmt.Sprintf("%s|%x", en.State, en.Answer)
}

func (e *replayEnv) state(id string) session.Replay {
	e.t.Helper()
	_, r, err := e.a.ReplayOf(e.ctx, id, owner)
	if err != nil {
		e.t.Fatalf("ReplayOf: %v", err)
	}
	return r
}

func (e *replayEnv) wantState(id string, want session.ReplayState) session.Replay {
	e.t.Helper()
	r := e.state(id)
	if r.State != want {
		e.t.Fatalf("state = %s, want %s", r.State, want)
	}
	return r
}

// lease takes the stash on st and checks its body.
func (e *replayEnv) lease(st *session.Store, id, token string, body []byte) session.Stored {
	e.t.Helper()
	req, rc, r, err := st.Lease(e.ctx, id, owner, token, lease)
	if err != nil {
		e.t.Fatalf("Lease: %v", err)
	}
	e.checkBody(rc, body)
	if r.State != session.StateLeased || !r.LeaseLive(e.clock.Now()) {
		e.t.Fatalf("Lease returned %+v, want a live lease", r)
	}
	return req
}

func (e *replayEnv) checkBody(rc io.ReadCloser, want []byte) {
	e.t.Helper()
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil || !bytes.Equal(got, want) {
		e.t.Fatalf("body: %d bytes, %v; want %d equal bytes", len(got), err, len(want))
	}
}

func (e *replayEnv) must(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func (e *replayEnv) refused(what string, err, want error) {
	e.t.Helper()
	if !errors.Is(err, want) {
		e.t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
	// A refusal is an answer, not an outage (which the gateway shows as 503).
	if want != session.ErrUnavailable && errors.Is(err, session.ErrUnavailable) {
		e.t.Fatalf("%s: err = %v, a refusal marked as ErrUnavailable", what, err)
	}
}

func (e *replayEnv) bodyGone(id string, which session.Bodies) {
	e.t.Helper()
	rc, err := e.b.OpenBody(e.ctx, "stash:"+id, which)
	if err == nil {
		rc.Close()
		e.t.Fatalf("body %d still kept", which)
	}
	e.refused("OpenBody of a freed body", err, session.ErrNotFound)
}
