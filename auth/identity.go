package auth

import (
	"errors"
	"net/mail"
	"strings"
)

// Identity is who a request comes from. Sources fill it in: local users from
// the htpasswd file, OIDC logins from the ID token, API clients from their
// bearer JWT. A source sets Email only when it vouches for the address (for
// OIDC: email_verified), because policies grant access by it.
type Identity struct {
	User    string // local username, or OIDC preferred_username falling back to sub
	Email   string
	Groups  []string
	Subject string // OIDC sub; the username for local users
}

// ErrBadCredentials means the username or password is wrong (never which).
var ErrBadCredentials = errors.New("invalid username or password")

// looksLikeEmail reports whether s is a bare email address ("a@example.com",
// not "Name <a@example.com>"), so a local username of that shape can double
// as the identity's email.
func looksLikeEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	domain := s[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return false
	}
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Name == "" && addr.Address == s
}

// emailDomain returns the part of an email address after its last '@', or ""
// if email has no non-empty local part and domain.
func emailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return ""
	}
	return email[at+1:]
}
