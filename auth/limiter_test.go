package auth

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func assertAllow(t *testing.T, l *LoginLimiter, user, addr string, wantOK bool, wantWait time.Duration) {
	t.Helper()
	ok, wait := l.Allow(user, addr)
	if ok != wantOK || wait != wantWait {
		t.Errorf("Allow(%q, %q) = %v, %v; want %v, %v", user, addr, ok, wait, wantOK, wantWait)
	}
}

func TestLoginLimiterBucket(t *testing.T) {
	clock := newFakeClock()
	l := NewLoginLimiter(3, time.Minute, clock.Now)

	for range 3 {
		assertAllow(t, l, "alice", "192.0.2.1", true, 0)
		l.Failed("alice", "192.0.2.1")
	}
	assertAllow(t, l, "alice", "192.0.2.1", false, time.Minute)
	clock.Advance(20 * time.Second)
	assertAllow(t, l, "alice", "192.0.2.1", false, 40*time.Second)
	clock.Advance(40 * time.Second)
	assertAllow(t, l, "alice", "192.0.2.1", true, 0)

	// One failure refilled, so exactly one more try before waiting again.
	l.Failed("alice", "192.0.2.1")
	assertAllow(t, l, "alice", "192.0.2.1", false, time.Minute)

	// The bucket refills to burst, not beyond.
	clock.Advance(time.Hour)
	for range 3 {
		assertAllow(t, l, "alice", "192.0.2.1", true, 0)
		l.Failed("alice", "192.0.2.1")
	}
	assertAllow(t, l, "alice", "192.0.2.1", false, time.Minute)
}

func TestLoginLimiterKeysUserAndAddressApart(t *testing.T) {
	clock := newFakeClock()
	l := NewLoginLimiter(2, time.Minute, clock.Now)
	l.Failed("alice", "192.0.2.1")
	l.Failed("alice", "192.0.2.1")

	tests := []struct {
		name, user, addr string
		ok               bool
	}{
		{"same user, same address", "alice", "192.0.2.1", false},
		{"same user, other address", "alice", "198.51.100.7", false},
		{"other user, same address", "bob", "192.0.2.1", false},
		{"other user, other address", "bob", "198.51.100.7", true},
		{"user alone", "alice", "", false},
		{"address alone", "", "192.0.2.1", false},
		{"address with a port", "bob", "192.0.2.1:51234", false},
		{"IPv4-mapped IPv6 address", "bob", "::ffff:192.0.2.1", false},
		{"a user named like the address", "192.0.2.1", "198.51.100.7", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, _ := l.Allow(tt.user, tt.addr); ok != tt.ok {
				t.Errorf("Allow(%q, %q) = %v, want %v", tt.user, tt.addr, ok, tt.ok)
			}
		})
	}
}

func TestLoginLimiterGroupsIPv6By64(t *testing.T) {
	l := NewLoginLimiter(1, time.Minute, newFakeClock().Now)
	l.Failed("", "2001:db8:1:2::1")
	for addr, want := range map[string]bool{
		"2001:db8:1:2::ffff":         false,
		"[2001:db8:1:2:aaaa::1]:443": false,
		"2001:db8:1:3::1":            true,
		"2001:db8::1":                true,
	} {
		if ok, _ := l.Allow("", addr); ok != want {
			t.Errorf("Allow from %s = %v, want %v", addr, ok, want)
		}
	}
}

func TestLoginLimiterSucceededForgetsOnlyTheUser(t *testing.T) {
	l := NewLoginLimiter(1, time.Minute, newFakeClock().Now)
	l.Failed("alice", "192.0.2.1")
	l.Succeeded("alice", "192.0.2.1")
	assertAllow(t, l, "alice", "198.51.100.7", true, 0)
	// The address spent its budget guessing; a valid login elsewhere does
	// not give it back.
	assertAllow(t, l, "bob", "192.0.2.1", false, time.Minute)
}

func TestLoginLimiterIgnoresEmptyKeys(t *testing.T) {
	l := NewLoginLimiter(1, time.Minute, newFakeClock().Now)
	l.Failed("", "")
	if n := l.Len(); n != 0 {
		t.Errorf("Len = %d after a failure with no user and no address, want 0", n)
	}
	assertAllow(t, l, "", "", true, 0)
}

func TestLoginLimiterForgetsIdleEntries(t *testing.T) {
	clock := newFakeClock()
	l := NewLoginLimiter(2, time.Minute, clock.Now)
	l.Failed("alice", "192.0.2.1")
	clock.Advance(30 * time.Second)
	l.Failed("bob", "198.51.100.7")
	if n := l.Len(); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
	// alice's entries have refilled (2 tokens take 2 minutes); bob's not yet.
	clock.Advance(90 * time.Second)
	l.Failed("carol", "203.0.113.9")
	if n := l.Len(); n != 4 {
		t.Errorf("Len = %d after alice's entries went idle, want 4 (bob's and carol's)", n)
	}
	assertAllow(t, l, "alice", "192.0.2.1", true, 0)
}

func TestLoginLimiterBoundsMemory(t *testing.T) {
	clock := newFakeClock()
	l := NewLoginLimiter(1, time.Hour, clock.Now)
	l.max = 3
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		l.Failed(u, "")
		clock.Advance(time.Second)
	}
	if n := l.Len(); n != 3 {
		t.Errorf("Len = %d, want the cap 3", n)
	}
	for u, want := range map[string]bool{"u1": true, "u2": true, "u3": false, "u4": false, "u5": false} {
		if ok, _ := l.Allow(u, ""); ok != want {
			t.Errorf("Allow(%s) = %v, want %v (oldest evicted first)", u, ok, want)
		}
	}
	// A repeated failure makes an entry recent again, so it outlives others.
	l.Failed("u3", "")
	l.Failed("u6", "")
	if ok, _ := l.Allow("u3", ""); ok {
		t.Error("u3 was evicted although it failed most recently")
	}
	if ok, _ := l.Allow("u4", ""); !ok {
		t.Error("u4, the oldest, was kept")
	}
	if DefaultLimiterEntries != NewLoginLimiter(1, time.Minute, nil).max {
		t.Error("NewLoginLimiter does not use DefaultLimiterEntries")
	}
}

func TestLoginLimiterHashesLongKeys(t *testing.T) {
	l := NewLoginLimiter(1, time.Minute, newFakeClock().Now)
	long := strings.Repeat("a", 100000)
	l.Failed(long, "")
	for k := range l.entries {
		if len(k) > maxKeyLen+16 {
			t.Errorf("key of %d bytes kept", len(k))
		}
	}
	if ok, _ := l.Allow(long, ""); ok {
		t.Error("a long user name escaped the limit")
	}
	if ok, _ := l.Allow(long+"b", ""); !ok {
		t.Error("two long user names share a bucket")
	}
}

func TestLoginLimiterClockSteppingBack(t *testing.T) {
	clock := newFakeClock()
	l := NewLoginLimiter(1, time.Minute, clock.Now)
	l.Failed("alice", "")
	clock.Advance(-time.Hour)
	if ok, _ := l.Allow("alice", ""); ok {
		t.Error("a clock stepping back refilled the bucket")
	}
}

func TestNewLoginLimiterArguments(t *testing.T) {
	l := NewLoginLimiter(0, time.Minute, newFakeClock().Now)
	assertAllow(t, l, "alice", "", true, 0)
	l.Failed("alice", "")
	assertAllow(t, l, "alice", "", false, time.Minute)

	defer func() {
		if recover() == nil {
			t.Error("NewLoginLimiter with a zero interval did not panic")
		}
	}()
	NewLoginLimiter(1, 0, nil)
}

func TestLoginLimiterConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	l := NewLoginLimiter(5, time.Second, clock.Now)
	l.max = 50
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				user := string(rune('a' + (g*200+i)%26))
				addr := "192.0.2." + string(rune('0'+i%10))
				l.Allow(user, addr)
				l.Failed(user, addr)
				if i%7 == 0 {
					l.Succeeded(user, addr)
					clock.Advance(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if n := l.Len(); n > 50 {
		t.Errorf("Len = %d, above the cap 50", n)
	}
}

func BenchmarkLoginLimiter(b *testing.B) {
	clock := newFakeClock()
	l := NewLoginLimiter(5, time.Minute, clock.Now)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := l.Allow("alice", "192.0.2.1"); ok {
			l.Failed("alice", "192.0.2.1")
		} else {
			l.Succeeded("alice", "192.0.2.1")
		}
	}
}
