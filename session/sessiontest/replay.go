package sessiontest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/session"
)

// lease is the lease the replay tests take; the clock is moved past it
// rather than waited for.
const lease = 10 * time.Second

// RunReplay runs the conformance suite of the replay state machine
// (session.Store's Lease, MarkSent, Answer, ...) over backends from
// newBackend: every transition and every refusal, with two Stores over one
// backend standing for two replicas.
func RunReplay(t *testing.T, newBackend func(t *testing.T) session.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(e *replayEnv)
	}{
		{"HappyPath", testReplayHappyPath},
		{"WrongOwnerChangesNothing", testWrongOwner},
		{"WrongTokenChangesNothing", testWrongToken},
		{"LiveLeaseRefusesLease", testLiveLease},
		{"RenewKeepsLease", testRenewKeepsLease},
		{"LapsedLeaseTakenBySecondStore", testLapsedLeaseTakeover},
		{"AmbiguousSentNotLeased", testAmbiguousNotLeased},
		{"ResendKeepsIdempotencyKey", testResend},
		{"UnleaseThenLease", testUnlease},
		{"SettleFreesBody", testSettleFreesBody},
		{"Discard", testDiscard},
		{"AnswerFreesStashBody", testAnswerFreesStashBody},
		{"AnswerRefusals", testAnswerRefusals},
		{"TakeAnswerOnce", testTakeAnswerOnce},
		{"Missing", testReplayMissing},
		{"LeaseRace", testLeaseRace},
		{"BadLease", testBadLease},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealer, err := session.NewSealer([][]byte{[]byte("sessiontest replay secret, 32+ bytes long")})
			if err != nil {
				t.Fatal(err)
			}
			clock := NewClock(time.Now())
			b := newBackend(t)
			tc.fn(&replayEnv{
				b:      b,
				a:      session.NewStore(b, sealer, session.WithStoreClock(clock.Now)),
				c:      session.NewStore(b, sealer, session.WithStoreClock(clock.Now)),
				clock:  clock,
				ctx:    ctxFor(t),
				t:      t,
				sealer: sealer,
			})
		})
	}
}

func testReplayHappyPath(e *replayEnv) {
	id, body := e.put(3*chunk + 5)
	e.wantState(id, session.StatePending)
	req := e.lease(e.a, id, "t1", body)
	if req.Method != http.MethodPost || req.URL != "/checkout" || req.Cookie != "app=1" || req.IdempotencyKey != "idem-"+id {
		e.t.Fatalf("Lease returned %+v", req)
	}
	e.wantState(id, session.StateLeased)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	r := e.wantState(id, session.StateSent)
	if r.Attempts != 1 || !r.SentAt.Equal(e.clock.Now()) || !r.LeaseLive(e.clock.Now()) {
		e.t.Fatalf("after MarkSent: %+v", r)
	}
	answer := bytes.Repeat([]byte("answer "), 20000)
	n, err := e.a.Answer(e.ctx, id, "t1", session.Result{Status: 201, Header: http.Header{"X-A": {"1"}}, Owner: owner, URL: "/checkout", Size: -1}, bytes.NewReader(answer), 1<<20)
	if err != nil || n != int64(len(answer)) {
		e.t.Fatalf("Answer = %d, %v", n, err)
	}
	e.wantState(id, session.StateAnswered)
	// The other replica shows it.
	res, rc, err := e.c.TakeAnswer(e.ctx, id, owner)
	e.must("TakeAnswer", err)
	if res.Status != 201 || res.Header.Get("X-A") != "1" || res.URL != "/checkout" {
		e.t.Fatalf("TakeAnswer = %+v", res)
	}
	e.checkBody(rc, answer)
	r = e.wantState(id, session.StateSettled)
	if r.Outcome != session.OutcomeShown {
		e.t.Fatalf("outcome %q, want shown", r.Outcome)
	}
	e.bodyGone(id, session.BodyAnswer)
	e.bodyGone(id, session.BodyStash)
}

func testWrongOwner(e *replayEnv) {
	id, body := e.put(100)
	before := e.raw(id)
	_, _, _, err := e.a.Lease(e.ctx, id, "browser-2", "t1", lease)
	e.refused("Lease by another browser", err, session.ErrNotOwner)
	_, _, err = e.a.ReplayOf(e.ctx, id, "browser-2")
	e.refused("ReplayOf by another browser", err, session.ErrNotOwner)
	e.refused("Discard by another browser", e.a.Discard(e.ctx, id, "browser-2"), session.ErrNotOwner)
	_, _, _, err = e.a.Lease(e.ctx, id, "", "t1", lease)
	e.refused("Lease without an owner", err, session.ErrNotOwner)
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused call changed the entry: %s -> %s", before, after)
	}
	// Ambiguous, then the wrong owner asks to send it again.
	e.lease(e.a, id, "t1", body)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	e.clock.Advance(lease + time.Second)
	before = e.raw(id)
	_, _, _, err = e.a.Resend(e.ctx, id, "browser-2", "t2", lease)
	e.refused("Resend by another browser", err, session.ErrNotOwner)
	e.refused("Discard by another browser", e.a.Discard(e.ctx, id, "browser-2"), session.ErrNotOwner)
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused call changed the entry: %s -> %s", before, after)
	}
	// A kept answer is not taken, nor destroyed, by another browser.
	_, rc, _, err := e.a.Resend(e.ctx, id, owner, "t2", lease)
	e.must("Resend", err)
	rc.Close()
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t2"))
	_, err = e.a.Answer(e.ctx, id, "t2", session.Result{Status: 200, Size: 2}, strings.NewReader("ok"), 10)
	e.must("Answer", err)
	before = e.raw(id)
	_, _, err = e.c.TakeAnswer(e.ctx, id, "browser-2")
	e.refused("TakeAnswer by another browser", err, session.ErrNotOwner)
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused TakeAnswer changed the entry: %s -> %s", before, after)
	}
	_, rc, err = e.c.TakeAnswer(e.ctx, id, owner)
	e.must("TakeAnswer by the owner", err)
	e.checkBody(rc, []byte("ok"))
}

func testWrongToken(e *replayEnv) {
	id, body := e.put(100)
	e.lease(e.a, id, "t1", body)
	before := e.raw(id)
	e.refused("Renew with another token", e.a.Renew(e.ctx, id, "t2", lease), session.ErrLeaseLost)
	e.refused("MarkSent with another token", e.a.MarkSent(e.ctx, id, "t2"), session.ErrLeaseLost)
	e.refused("Unlease with another token", e.a.Unlease(e.ctx, id, "t2"), session.ErrLeaseLost)
	e.refused("Settle with another token", e.a.Settle(e.ctx, id, "t2", "failed"), session.ErrLeaseLost)
	e.refused("MarkSent with no token", e.a.MarkSent(e.ctx, id, ""), session.ErrLeaseLost)
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused call changed the entry: %s -> %s", before, after)
	}
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	before = e.raw(id)
	_, err := e.a.Answer(e.ctx, id, "t2", session.Result{Status: 200, Size: -1}, strings.NewReader("x"), 10)
	e.refused("Answer with another token", err, session.ErrLeaseLost)
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused Answer changed the entry: %s -> %s", before, after)
	}
	// Token right, state wrong.
	e.refused("MarkSent twice", e.a.MarkSent(e.ctx, id, "t1"), session.ErrState)
}

func testLiveLease(e *replayEnv) {
	id, body := e.put(10)
	e.lease(e.a, id, "t1", body)
	for _, st := range []*session.Store{e.a, e.c} {
		_, rc, r, err := st.Lease(e.ctx, id, owner, "t2", lease)
		e.refused("Lease of a leased stash", err, session.ErrState)
		if rc != nil || r.State != session.StateLeased || !r.LeaseLive(e.clock.Now()) {
			e.t.Fatalf("refused Lease returned %v, %+v", rc, r)
		}
	}
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	_, _, r, err := e.c.Lease(e.ctx, id, owner, "t2", lease)
	e.refused("Lease of a sent stash", err, session.ErrState)
	if r.State != session.StateSent {
		e.t.Fatalf("refused Lease returned %+v", r)
	}
}

func testRenewKeepsLease(e *replayEnv) {
	id, body := e.put(10)
	e.lease(e.a, id, "t1", body)
	for i := 0; i < 3; i++ {
		e.clock.Advance(lease - time.Second)
		e.must("Renew", e.a.Renew(e.ctx, id, "t1", lease))
	}
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	for i := 0; i < 3; i++ {
		e.clock.Advance(lease - time.Second)
		e.must("Renew while sent", e.a.Renew(e.ctx, id, "t1", lease))
		if r := e.state(id); r.Ambiguous(e.clock.Now()) {
			e.t.Fatalf("renewed send is ambiguous: %+v", r)
		}
	}
	_, _, _, err := e.c.Lease(e.ctx, id, owner, "t2", lease)
	e.refused("Lease of a renewed send", err, session.ErrState)
	_, _, _, err = e.c.Resend(e.ctx, id, owner, "t2", lease)
	e.refused("Resend of a send still alive", err, session.ErrState)
}

func testLapsedLeaseTakeover(e *replayEnv) {
	id, body := e.put(2*chunk + 1)
	e.lease(e.a, id, "t1", body)
	e.clock.Advance(lease) // lapses exactly at its deadline
	if r := e.state(id); r.LeaseLive(e.clock.Now()) {
		e.t.Fatalf("lease still live after its deadline: %+v", r)
	}
	// The other replica takes it: its sender died before sending anything.
	e.lease(e.c, id, "t2", body)
	e.refused("Renew by the dead sender", e.a.Renew(e.ctx, id, "t1", lease), session.ErrLeaseLost)
	e.refused("MarkSent by the dead sender", e.a.MarkSent(e.ctx, id, "t1"), session.ErrLeaseLost)
	e.must("MarkSent by the new sender", e.c.MarkSent(e.ctx, id, "t2"))
	e.must("Settle", e.c.Settle(e.ctx, id, "t2", "redirected"))
	if r := e.wantState(id, session.StateSettled); r.Outcome != "redirected" || r.Attempts != 1 {
		e.t.Fatalf("settled as %+v", r)
	}
}

func testAmbiguousNotLeased(e *replayEnv) {
	id, body := e.put(10)
	e.lease(e.a, id, "t1", body)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	e.clock.Advance(lease + time.Second)
	r := e.state(id)
	if !r.Ambiguous(e.clock.Now()) {
		e.t.Fatalf("a sent stash with a lapsed lease is not ambiguous: %+v", r)
	}
	before := e.raw(id)
	for _, st := range []*session.Store{e.a, e.c} {
		_, rc, r, err := st.Lease(e.ctx, id, owner, "t2", lease)
		e.refused("Lease of an ambiguous stash", err, session.ErrState)
		if rc != nil || r.State != session.StateSent {
			e.t.Fatalf("refused Lease returned %v, %+v", rc, r)
		}
	}
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused Lease changed the entry: %s -> %s", before, after)
	}
}

func testResend(e *replayEnv) {
	id, body := e.put(chunk)
	first := e.lease(e.a, id, "t1", body)
	_, _, _, err := e.a.Resend(e.ctx, id, owner, "t2", lease)
	e.refused("Resend of a leased stash", err, session.ErrState)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	sentAt := e.clock.Now()
	e.clock.Advance(lease + time.Second)
	req, rc, r, err := e.c.Resend(e.ctx, id, owner, "t2", lease)
	e.must("Resend", err)
	e.checkBody(rc, body)
	if req.IdempotencyKey != first.IdempotencyKey || req.IdempotencyKey == "" {
		e.t.Fatalf("Resend IdempotencyKey %q, first send %q", req.IdempotencyKey, first.IdempotencyKey)
	}
	if r.State != session.StateLeased || !r.SentAt.Equal(sentAt) || r.Attempts != 1 {
		e.t.Fatalf("after Resend: %+v", r)
	}
	e.refused("MarkSent by the first sender", e.a.MarkSent(e.ctx, id, "t1"), session.ErrLeaseLost)
	e.must("MarkSent", e.c.MarkSent(e.ctx, id, "t2"))
	if r := e.state(id); r.Attempts != 2 {
		e.t.Fatalf("after the second send: %+v, want 2 attempts", r)
	}
	_, _, _, err = e.c.Resend(e.ctx, id, owner, "t3", lease)
	e.refused("Resend of a live send", err, session.ErrState)
}

func testUnlease(e *replayEnv) {
	id, body := e.put(chunk + 3)
	e.lease(e.a, id, "t1", body)
	e.must("Unlease", e.a.Unlease(e.ctx, id, "t1"))
	e.wantState(id, session.StatePending)
	e.refused("Renew after Unlease", e.a.Renew(e.ctx, id, "t1", lease), session.ErrLeaseLost)
	e.lease(e.c, id, "t2", body)
	e.must("MarkSent", e.c.MarkSent(e.ctx, id, "t2"))
	// The connection failed before anything was written: back to pending.
	e.must("Unlease of a sent stash", e.c.Unlease(e.ctx, id, "t2"))
	e.wantState(id, session.StatePending)
	e.lease(e.a, id, "t3", body)
}

func testSettleFreesBody(e *replayEnv) {
	id, body := e.put(4 * chunk)
	e.lease(e.a, id, "t1", body)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	e.must("Settle", e.a.Settle(e.ctx, id, "t1", "redirected"))
	e.bodyGone(id, session.BodyStash)
	if r := e.wantState(id, session.StateSettled); r.Outcome != "redirected" {
		e.t.Fatalf("outcome %q", r.Outcome)
	}
	_, _, r, err := e.c.Lease(e.ctx, id, owner, "t2", lease)
	e.refused("Lease of a settled stash", err, session.ErrState)
	if r.State != session.StateSettled || r.Outcome != "redirected" {
		e.t.Fatalf("refused Lease returned %+v", r)
	}
	e.refused("Settle twice", e.a.Settle(e.ctx, id, "t1", "x"), session.ErrState)
	e.refused("Discard of a settled stash", e.a.Discard(e.ctx, id, owner), session.ErrState)
	// A leased stash can be settled too (the sender found it cannot be sent).
	id2, body2 := e.put(10)
	e.lease(e.a, id2, "t1", body2)
	e.must("Settle of a leased stash", e.a.Settle(e.ctx, id2, "t1", "failed"))
	e.bodyGone(id2, session.BodyStash)
}

func testDiscard(e *replayEnv) {
	id, _ := e.put(chunk)
	e.must("Discard of a pending stash", e.a.Discard(e.ctx, id, owner))
	if r := e.wantState(id, session.StateSettled); r.Outcome != session.OutcomeDiscarded {
		e.t.Fatalf("outcome %q", r.Outcome)
	}
	e.bodyGone(id, session.BodyStash)

	id, body := e.put(10)
	e.lease(e.a, id, "t1", body)
	e.refused("Discard while leased", e.a.Discard(e.ctx, id, owner), session.ErrState)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	e.refused("Discard while being sent", e.a.Discard(e.ctx, id, owner), session.ErrState)
	e.clock.Advance(lease + time.Second)
	e.must("Discard of an ambiguous stash", e.c.Discard(e.ctx, id, owner))
	e.bodyGone(id, session.BodyStash)
	e.refused("MarkSent after Discard", e.a.Renew(e.ctx, id, "t1", lease), session.ErrLeaseLost)

	id, body = e.put(10)
	e.lease(e.a, id, "t1", body)
	e.clock.Advance(lease + time.Second)
	e.must("Discard of a lapsed lease", e.c.Discard(e.ctx, id, owner))
}

func testAnswerFreesStashBody(e *replayEnv) {
	id, body := e.put(3 * chunk)
	e.lease(e.a, id, "t1", body)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	_, err := e.a.Answer(e.ctx, id, "t1", session.Result{Status: 200, Size: 5}, strings.NewReader("hello"), 100)
	e.must("Answer", err)
	e.bodyGone(id, session.BodyStash)
	e.refused("Settle by another token", e.a.Settle(e.ctx, id, "t2", "x"), session.ErrLeaseLost)
	// The sender may settle an answered stash whose answer cannot be shown.
	e.must("Settle of an answered stash", e.a.Settle(e.ctx, id, "t1", "failed"))
	e.bodyGone(id, session.BodyAnswer)
	_, _, err = e.a.TakeAnswer(e.ctx, id, owner)
	e.refused("TakeAnswer after Settle", err, session.ErrState)
}

func testAnswerRefusals(e *replayEnv) {
	id, body := e.put(10)
	e.lease(e.a, id, "t1", body)
	_, err := e.a.Answer(e.ctx, id, "t1", session.Result{Status: 200, Size: -1}, strings.NewReader("x"), 10)
	e.refused("Answer before MarkSent", err, session.ErrState)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	before := e.raw(id)
	_, err = e.a.Answer(e.ctx, id, "t1", session.Result{Status: 200, Size: -1}, bytes.NewReader(make([]byte, 3*chunk)), 2*chunk)
	e.refused("Answer over its limit", err, session.ErrTooLarge)
	_, err = e.a.Answer(e.ctx, id, "t1", session.Result{Status: 200, Size: 9}, strings.NewReader("short"), 100)
	if err == nil {
		e.t.Fatal("Answer shorter than declared succeeded")
	}
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused Answer changed the entry: %s -> %s", before, after)
	}
	_, err = e.a.Answer(e.ctx, id, "t1", session.Result{Status: 200, Size: 2}, strings.NewReader("ok"), 100)
	e.must("Answer after the refusals", err)
	_, err = e.a.Answer(e.ctx, id, "t1", session.Result{Status: 200, Size: 2}, strings.NewReader("ok"), 100)
	e.refused("Answer twice", err, session.ErrState)
}

func testTakeAnswerOnce(e *replayEnv) {
	id, body := e.put(10)
	_, _, err := e.a.TakeAnswer(e.ctx, id, owner)
	e.refused("TakeAnswer of a pending stash", err, session.ErrState)
	e.lease(e.a, id, "t1", body)
	e.must("MarkSent", e.a.MarkSent(e.ctx, id, "t1"))
	answer := bytes.Repeat([]byte{7}, 2*chunk+9)
	_, err = e.a.Answer(e.ctx, id, "t1", session.Result{Status: 200, Size: int64(len(answer))}, bytes.NewReader(answer), 1<<20)
	e.must("Answer", err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(st *session.Store) {
			defer wg.Done()
			_, rc, err := st.TakeAnswer(e.ctx, id, owner)
			if err != nil {
				if !errors.Is(err, session.ErrState) {
					e.t.Errorf("losing TakeAnswer: %v, want ErrState", err)
				}
				return
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, answer) {
				e.t.Errorf("answer body: %d bytes, %v", len(got), err)
			}
			mu.Lock()
			wins++
			mu.Unlock()
		}([]*session.Store{e.a, e.c}[i%2])
	}
	wg.Wait()
	if wins != 1 {
		e.t.Fatalf("%d TakeAnswer calls won, want 1", wins)
	}
	e.bodyGone(id, session.BodyAnswer)
}

func testReplayMissing(e *replayEnv) {
	id := session.NewID()
	_, _, _, err := e.a.Lease(e.ctx, id, owner, "t", lease)
	e.refused("Lease", err, session.ErrNotFound)
	_, _, _, err = e.a.Resend(e.ctx, id, owner, "t", lease)
	e.refused("Resend", err, session.ErrNotFound)
	e.refused("Renew", e.a.Renew(e.ctx, id, "t", lease), session.ErrNotFound)
	e.refused("MarkSent", e.a.MarkSent(e.ctx, id, "t"), session.ErrNotFound)
	e.refused("Unlease", e.a.Unlease(e.ctx, id, "t"), session.ErrNotFound)
	e.refused("Settle", e.a.Settle(e.ctx, id, "t", "x"), session.ErrNotFound)
	e.refused("Discard", e.a.Discard(e.ctx, id, owner), session.ErrNotFound)
	_, err = e.a.Answer(e.ctx, id, "t", session.Result{Size: -1}, strings.NewReader("x"), 10)
	e.refused("Answer", err, session.ErrNotFound)
	_, _, err = e.a.TakeAnswer(e.ctx, id, owner)
	e.refused("TakeAnswer", err, session.ErrNotFound)
	_, _, err = e.a.ReplayOf(e.ctx, id, owner)
	e.refused("ReplayOf", err, session.ErrNotFound)
	_, _, _, err = e.a.Lease(e.ctx, "bad id", owner, "t", lease)
	e.refused("Lease of an invalid id", err, session.ErrNotFound)
}

func testLeaseRace(e *replayEnv) {
	const racers = 16
	for round := 0; round < 3; round++ {
		id, body := e.put(chunk + 1)
		if round == 2 {
			// Racing for a lapsed lease is the same race.
			e.lease(e.a, id, "dead", body)
			e.clock.Advance(lease + time.Second)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		start := make(chan struct{})
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				st := []*session.Store{e.a, e.c}[i%2]
				token := fmt.Sprintf("r%d", i)
				<-start
				_, rc, _, err := st.Lease(e.ctx, id, owner, token, lease)
				if err != nil {
					if !errors.Is(err, session.ErrState) {
						e.t.Errorf("losing Lease: %v, want ErrState", err)
					}
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, body) {
					e.t.Errorf("winner's body: %d bytes, %v", len(got), err)
				}
				mu.Lock()
				winners = append(winners, token)
				mu.Unlock()
			}(i)
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			e.t.Fatalf("round %d: %d Lease calls won (%v), want exactly 1", round, len(winners), winners)
		}
		// The winner holds it: its token works, nobody else's does.
		e.must("MarkSent by the winner", e.a.MarkSent(e.ctx, id, winners[0]))
	}
}

func testBadLease(e *replayEnv) {
	id, _ := e.put(10)
	before := e.raw(id)
	for _, d := range []time.Duration{0, -time.Second, session.MaxLease + time.Second} {
		if _, _, _, err := e.a.Lease(e.ctx, id, owner, "t", d); err == nil {
			e.t.Fatalf("Lease for %s succeeded", d)
		}
	}
	if _, _, _, err := e.a.Lease(e.ctx, id, owner, "", lease); err == nil {
		e.t.Fatal("Lease without a token succeeded")
	}
	if after := e.raw(id); after != before {
		e.t.Fatalf("a refused Lease changed the entry: %s -> %s", before, after)
	}
}
