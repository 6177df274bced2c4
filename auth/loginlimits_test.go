package auth

import (
	"context"
	"sync"
	"testing"
	"time"
)

// memWindow is a Window in memory for the limiter's rules; the shared,
// atomic one (session.Window) is tested with the stores and, across two
// processes, in cmd/postern.
type memWindow struct {
	mu     sync.Mutex
	length time.Duration
	events map[string][]memEvent
}

type memEvent struct {
	at time.Time
	n  int64
}

func newMemWindow(length time.Duration) *memWindow {
	return &memWindow{length: length, events: map[string][]memEvent{}}
}

func (w *memWindow) count(id string, now time.Time) int64 {
	var sum int64
	for _, e := range w.events[id] {
		if now.Sub(e.at) < w.length {
			sum += e.n
		}
	}
	return sum
}

func (w *memWindow) Add(_ context.Context, id string, n, limit int64, now time.Time) (int64, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.count(id, now)
	if n > 0 && limit >= 0 && c+n > limit {
		return c, false, nil
	}
	w.events[id] = append(w.events[id], memEvent{now, n})
	return c + n, true, nil
}

func (w *memWindow) Count(_ context.Context, id string, now time.Time) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count(id, now), nil
}

func (w *memWindow) Release(_ context.Context, id string, n int64, at, _ time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events[id] = append(w.events[id], memEvent{at, -n})
	return nil
}

func (w *memWindow) Reset(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.events, id)
	return nil
}

func (w *memWindow) Length() time.Duration { return w.length }

type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time { return c.t }

func newTestLimiter(lim LoginLimits) (*LoginLimiter, *testClock) {
	clk := &testClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	w := func() Window { return newMemWindow(15 * time.Minute) }
	return NewLoginLimiter(LoginWindows{Address: w(), Pair: w(), User: w()}, lim, clk.Now), clk
}

// fail makes one attempt that fails, and reports whether it was allowed.
func fail(t *testing.T, l *LoginLimiter, user, addr string) bool {
	t.Helper()
	a, err := l.Begin(context.Background(), user, addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.Allowed
}

func TestLoginLimiterRules(t *testing.T) {
	lim := LoginLimits{PerAddress: 20, PerPair: 5, PerUser: 12, PerPairUnderAttack: 2}

	t.Run("one guesser at one account backs off, the person elsewhere does not", func(t *testing.T) {
		l, clk := newTestLimiter(lim)
		for i := range 5 {
			if !fail(t, l, "alice", "198.51.100.1") {
				t.Fatalf("failure %d refused, want 5 allowed", i+1)
			}
		}
		a, _ := l.Begin(context.Background(), "alice", "198.51.100.1")
		if a.Allowed || a.Reason != "user_address" || a.Wait <= 0 {
			t.Fatalf("sixth attempt: %+v, want refused for user_address with a wait", a)
		}
		ok, _ := l.Begin(context.Background(), "alice", "203.0.113.5")
		if !ok.Allowed {
			t.Fatal("alice from another address is refused")
		}
		if err := ok.Succeeded(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The block ends on its own: a failure leaves the window.
		clk.t = clk.t.Add(16 * time.Minute)
		if !fail(t, l, "alice", "198.51.100.1") {
			t.Fatal("still refused after the window")
		}
	})

	t.Run("an address spraying many names is stopped", func(t *testing.T) {
		l, _ := newTestLimiter(lim)
		for i := range 20 {
			if !fail(t, l, "user"+string(rune('a'+i)), "2001:db8:1:2::1") {
				t.Fatalf("failure %d refused", i+1)
			}
		}
		// Same /64, another name.
		a, _ := l.Begin(context.Background(), "zed", "2001:db8:1:2::beef")
		if a.Allowed || a.Reason != "address" {
			t.Fatalf("21st failure from the /64: %+v, want refused for address", a)
		}
	})

	t.Run("a name attacked from many addresses is never locked", func(t *testing.T) {
		l, _ := newTestLimiter(lim)
		for i := range 12 {
			fail(t, l, "alice", "198.51.100."+string(rune('0'+i%10))+string(rune('0'+i/10)))
		}
		// Under attack: an address with 2 failures for alice is refused...
		fail(t, l, "alice", "192.0.2.1")
		fail(t, l, "alice", "192.0.2.1")
		if a, _ := l.Begin(context.Background(), "alice", "192.0.2.1"); a.Allowed || a.Reason != "user_under_attack" {
			t.Fatalf("third failure while alice is under attack: %+v, want refused", a)
		}
		// ...but the person, from an address that has not failed, may try.
		a, _ := l.Begin(context.Background(), "alice", "203.0.113.9")
		if !a.Allowed {
			t.Fatal("alice from a fresh address is locked out")
		}
	})

	t.Run("a success takes its attempt back and forgets the person's typos", func(t *testing.T) {
		l, _ := newTestLimiter(lim)
		for range 4 {
			fail(t, l, "alice", "198.51.100.1")
		}
		a, _ := l.Begin(context.Background(), "alice", "198.51.100.1")
		if err := a.Succeeded(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if !fail(t, l, "alice", "198.51.100.1") {
				t.Fatalf("failure %d after the success refused", i+1)
			}
		}
	})
}

// Concurrent attempts are each counted before any password is checked:
// of 30 at once from one address, only the budget passes.
func TestLoginLimiterConcurrentAttempts(t *testing.T) {
	l, _ := newTestLimiter(LoginLimits{PerAddress: 20, PerPair: 5, PerUser: 50, PerPairUnderAttack: 2})
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			a, err := l.Begin(context.Background(), "alice", "198.51.100.1")
			if err != nil {
				t.Error(err)
				return
			}
			if a.Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 5 {
		t.Fatalf("%d of 30 concurrent attempts allowed, want 5", allowed)
	}
}
