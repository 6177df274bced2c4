package auth

// CONTRACT (to be implemented; this file is replaced by the implementation).

import (
	"errors"
	"time"
)

// Identity is who a request comes from.
type Identity struct {
	User    string // local username, or OIDC preferred_username falling back to sub
	Email   string
	Groups  []string
	Subject string // OIDC sub; the username for local users
}

// ErrBadCredentials means the username or password is wrong (never which).
var ErrBadCredentials = errors.New("invalid username or password")

// Htpasswd is a set of local users loaded from an Apache "htpasswd -B" file.
type Htpasswd struct{}

// LoadHtpasswd reads path. Lines that are not user:bcrypt-hash are errors
// naming the line number; comments (#) and blank lines are skipped.
func LoadHtpasswd(path string) (*Htpasswd, error) { panic("unimplemented") }

// ParseHtpasswd parses htpasswd content (name is used in error messages).
func ParseHtpasswd(name string, data []byte) (*Htpasswd, error) { panic("unimplemented") }

// Check verifies a username and password. Unknown users cost the same time as
// known ones. It returns ErrBadCredentials on any mismatch.
func (h *Htpasswd) Check(user, password string) (Identity, error) { panic("unimplemented") }

// HashPassword returns the htpasswd line "user:$2y$..." (bcrypt, cost 12... ).
func HashPassword(user, password string) (string, error) { panic("unimplemented") }

// LoginLimiter rate-limits failed logins per username and per client address.
type LoginLimiter struct{}

// NewLoginLimiter allows burst failures per key, refilled at one per interval.
func NewLoginLimiter(burst int, interval time.Duration, now func() time.Time) *LoginLimiter {
	panic("unimplemented")
}

// Allow reports whether a login attempt for user from addr may be tried now,
// and if not, how long to wait.
func (l *LoginLimiter) Allow(user, addr string) (bool, time.Duration) { panic("unimplemented") }

// Failed records a failed attempt; Succeeded forgets the user's failures.
func (l *LoginLimiter) Failed(user, addr string)    { panic("unimplemented") }
func (l *LoginLimiter) Succeeded(user, addr string) { panic("unimplemented") }

// Policy says who may pass. The zero Policy lets anyone who logged in pass.
type Policy struct {
	Emails  []string // exact addresses, case-insensitive
	Domains []string // email domains, case-insensitive
	Groups  []string // any of these groups
}

// Allows reports whether id may pass.
func (p Policy) Allows(id Identity) bool { panic("unimplemented") }
