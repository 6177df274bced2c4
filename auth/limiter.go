package auth

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"sync"
	"time"
)

// DefaultLimiterEntries is how many users and addresses a LoginLimiter
// remembers at most. Beyond it the entry idle longest is forgotten: to flush
// someone else's failures an attacker needs that many fresh addresses, each of
// which is itself limited.
const DefaultLimiterEntries = 10000

// maxKeyLen bounds the memory one key may take; longer names are hashed.
const maxKeyLen = 128

// LoginLimiter rate-limits failed logins per username and per client address.
// Each key has a token bucket: burst failures, refilled at one per interval.
// Only failures spend tokens, so people who type their password right are
// never slowed down. It is safe for concurrent use.
type LoginLimiter struct {
	refill   time.Duration // burst * interval: how long an empty bucket takes to refill
	interval time.Duration
	now      func() time.Time
	max      int

	mu      sync.Mutex
	entries map[string]*list.Element // key -> element whose Value is *bucket
	byAge   *list.List               // most recently failed at the front
}

// bucket is one key's budget, kept as the moment it will be full again (as
// in GCRA): at time t it holds burst - (full-t)/interval failures. Durations
// rather than fractions of tokens keep the arithmetic exact.
type bucket struct {
	key     string
	full    time.Time
	touched time.Time
}

// NewLoginLimiter allows burst failures per key, refilled at one per interval.
// now is the clock (time.Now if nil); burst below 1 counts as 1. It panics if
// interval is not positive, as a limiter that never refills is a bug.
func NewLoginLimiter(burst int, interval time.Duration, now func() time.Time) *LoginLimiter {
	if interval <= 0 {
		panic("auth: NewLoginLimiter needs a positive interval")
	}
	if now == nil {
		now = time.Now
	}
	return &LoginLimiter{
		refill:   time.Duration(max(burst, 1)) * interval,
		interval: interval,
		now:      now,
		max:      DefaultLimiterEntries,
		entries:  make(map[string]*list.Element),
		byAge:    list.New(),
	}
}

// Allow reports whether a login attempt for user from addr may be tried now,
// and if not, how long to wait. addr is the client's IP address (a port is
// ignored; IPv6 addresses count per /64). Both the user's and the address's
// budget must have a failure left; an empty user or addr is not limited on
// its own.
func (l *LoginLimiter) Allow(user, addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys(user, addr) {
		if e, ok := l.entries[k]; ok {
			// One failure left means full is at most burst-1 intervals away.
			w := e.Value.(*bucket).full.Sub(now) - (l.refill - l.interval)
			wait = max(wait, w)
		}
	}
	return wait == 0, wait
}

// Failed records a failed attempt against both the user and the address.
func (l *LoginLimiter) Failed(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys(user, addr) {
		b := l.touch(k, now)
		full := b.full
		if full.Before(now) {
			full = now
		}
		// An empty bucket stays empty; failures beyond it do not pile up.
		b.full = minTime(full.Add(l.interval), now.Add(l.refill))
		b.touched = now
	}
}

// Succeeded forgets the user's failures. The address keeps its record, so one
// valid account does not reset the budget of an address guessing others.
func (l *LoginLimiter) Succeeded(user, addr string) {
	if user == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := key("u", user)
	if e, ok := l.entries[k]; ok {
		l.byAge.Remove(e)
		delete(l.entries, k)
	}
}

// Len returns how many keys the limiter currently remembers.
func (l *LoginLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// touch returns k's bucket, making it the most recent, creating it if needed.
// It forgets entries that have refilled and, at capacity, the oldest one.
func (l *LoginLimiter) touch(k string, now time.Time) *bucket {
	if e, ok := l.entries[k]; ok {
		l.byAge.MoveToFront(e)
		return e.Value.(*bucket)
	}
	l.forgetIdle(now)
	if len(l.entries) >= l.max {
		oldest := l.byAge.Back()
		l.byAge.Remove(oldest)
		delete(l.entries, oldest.Value.(*bucket).key)
	}
	b := &bucket{key: k, full: now, touched: now}
	l.entries[k] = l.byAge.PushFront(b)
	return b
}

// forgetIdle drops entries, oldest first, that have certainly refilled to a
// full budget: they are no different from a key never seen. A bucket is full
// at most burst intervals after its last failure, so the scan stops at the
// first entry younger than that.
func (l *LoginLimiter) forgetIdle(now time.Time) {
	for e := l.byAge.Back(); e != nil; e = l.byAge.Back() {
		b := e.Value.(*bucket)
		if now.Sub(b.touched) < l.refill {
			return
		}
		l.byAge.Remove(e)
		delete(l.entries, b.key)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// keys returns the limiter keys of a login attempt, leaving out empty parts.
func keys(user, addr string) []string {
	ks := make([]string, 0, 2)
	if user != "" {
		ks = append(ks, key("u", user))
	}
	if addr != "" {
		ks = append(ks, key("a", addrKey(addr)))
	}
	return ks
}

// addrKey groups an IPv6 address by its /64, the block one subscriber
// usually gets, so that rotating through it does not escape the limit. A
// port, if present, is dropped. Anything else is used as given.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// key namespaces users and addresses apart and bounds the key's size.
func key(kind, s string) string {
	if len(s) > maxKeyLen {
		sum := sha256.Sum256([]byte(s))
		s = "sha256:" + hex.EncodeToString(sum[:])
	}
	return kind + ":" + s
}
