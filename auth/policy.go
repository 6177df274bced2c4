package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy says who may pass. The zero Policy lets anyone who logged in pass;
// otherwise an identity passes if any one rule matches it.
type Policy struct {
	Emails  []string // exact addresses, case-insensitive (--allow-email)
	Domains []string // email domains, case-insensitive, no subdomains (--allow-domain)
	Groups  []string // any of these groups, exact (--allow-group)
}

// Allows reports whether id may pass. Email and domain rules never match an
// identity without an email; a domain matches only the part after the last
// '@' exactly, so "example.com" allows neither "evil-example.com" nor
// "sub.example.com".
func (p Policy) Allows(id Identity) bool {
	if len(p.Emails) == 0 && len(p.Domains) == 0 && len(p.Groups) == 0 {
		return true
	}
	if domain := emailDomain(id.Email); domain != "" {
		for _, e := range p.Emails {
			if e != "" && strings.EqualFold(e, id.Email) {
				return true
			}
		}
		for _, d := range p.Domains {
			if d != "" && strings.EqualFold(d, domain) {
				return true
			}
		}
	}
	for _, g := range id.Groups {
		if g != "" && slices.Contains(p.Groups, g) {
			return true
		}
	}
	return false
}

// Validate reports every bad entry at once, each naming its setting.
func (p Policy) Validate() error {
	var errs []error
	bad := func(setting string, i int, v, problem string) {
		errs = append(errs, fmt.Errorf("%s entry %d (%q): %s", setting, i+1, v, problem))
	}
	for i, e := range p.Emails {
		switch {
		case e == "":
			bad("--allow-email", i, e, "is empty")
		case strings.TrimSpace(e) != e:
			bad("--allow-email", i, e, "has leading or trailing spaces")
		case emailDomain(e) == "":
			bad("--allow-email", i, e, "is not an email address (want name@domain; use --allow-domain for a whole domain)")
		}
	}
	for i, d := range p.Domains {
		switch {
		case d == "":
			bad("--allow-domain", i, d, "is empty")
		case strings.TrimSpace(d) != d:
			bad("--allow-domain", i, d, "has leading or trailing spaces")
		case strings.Contains(d, "@"):
			bad("--allow-domain", i, d, "contains '@' (want the domain alone, like example.com; use --allow-email for one address)")
		case strings.HasPrefix(d, ".") || strings.HasPrefix(d, "*"):
			bad("--allow-domain", i, d, "is a wildcard; domains match exactly, list each subdomain on its own")
		}
	}
	for i, g := range p.Groups {
		switch {
		case g == "":
			bad("--allow-group", i, g, "is empty")
		case strings.TrimSpace(g) != g:
			bad("--allow-group", i, g, "has leading or trailing spaces")
		}
	}
	return errors.Join(errs...)
}
