package auth

import (
	"strings"
	"testing"
)

func TestPolicyAllows(t *testing.T) {
	people := Policy{Emails: []string{"Alice@Example.com"}}
	domain := Policy{Domains: []string{"Example.COM"}}
	groups := Policy{Groups: []string{"admins", "ops"}}
	mixed := Policy{Emails: []string{"x@other.org"}, Domains: []string{"example.com"}, Groups: []string{"ops"}}

	tests := []struct {
		name   string
		policy Policy
		id     Identity
		want   bool
	}{
		{"zero policy, anyone", Policy{}, Identity{User: "bob"}, true},
		{"zero policy, empty identity", Policy{}, Identity{}, true},
		{"empty lists count as zero", Policy{Emails: []string{}, Groups: []string{}}, Identity{User: "bob"}, true},

		{"email exact", people, Identity{Email: "alice@example.com"}, true},
		{"email case-insensitive", people, Identity{Email: "ALICE@EXAMPLE.COM"}, true},
		{"email other person", people, Identity{Email: "bob@example.com"}, false},
		{"email as a prefix", people, Identity{Email: "alice@example.com.evil.org"}, false},
		{"email by user name only", people, Identity{User: "alice@example.com"}, false},
		{"no email", people, Identity{User: "alice"}, false},

		{"domain exact", domain, Identity{Email: "bob@example.com"}, true},
		{"domain case-insensitive", domain, Identity{Email: "bob@EXAMPLE.com"}, true},
		{"domain as a suffix of another", domain, Identity{Email: "bob@evil-example.com"}, false},
		{"subdomain not listed", domain, Identity{Email: "a@sub.example.com"}, false},
		{"domain as a prefix", domain, Identity{Email: "bob@example.com.evil.org"}, false},
		{"domain after the last @", domain, Identity{Email: "bob@example.com@evil.org"}, false},
		{"domain in the local part", domain, Identity{Email: "example.com@evil.org"}, false},
		{"bare domain as email", domain, Identity{Email: "example.com"}, false},
		{"empty local part", domain, Identity{Email: "@example.com"}, false},
		{"domain, no email", domain, Identity{User: "bob"}, false},

		{"group any-of, first", groups, Identity{Groups: []string{"admins"}}, true},
		{"group any-of, second", groups, Identity{Groups: []string{"dev", "ops"}}, true},
		{"group none", groups, Identity{Groups: []string{"dev"}}, false},
		{"group is exact", groups, Identity{Groups: []string{"Admins"}}, false},
		{"no groups", groups, Identity{Email: "a@example.com"}, false},

		{"mixed by domain", mixed, Identity{Email: "a@example.com"}, true},
		{"mixed by email", mixed, Identity{Email: "x@other.org"}, true},
		{"mixed by group", mixed, Identity{Email: "y@other.org", Groups: []string{"ops"}}, true},
		{"mixed none", mixed, Identity{Email: "y@other.org", Groups: []string{"dev"}}, false},

		// Entries Validate refuses must not open the door either.
		{"empty email entry, empty email", Policy{Emails: []string{""}}, Identity{User: "bob"}, false},
		{"empty domain entry, email ending in @", Policy{Domains: []string{""}}, Identity{Email: "bob@"}, false},
		{"empty group entry, empty group", Policy{Groups: []string{""}}, Identity{Groups: []string{""}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Allows(tt.id); got != tt.want {
				t.Errorf("%+v.Allows(%+v) = %v, want %v", tt.policy, tt.id, got, tt.want)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		want   []string // substrings of the error; none means valid
	}{
		{"zero", Policy{}, nil},
		{"good", Policy{Emails: []string{"a@example.com"}, Domains: []string{"example.com", "sub.example.com"}, Groups: []string{"ops"}}, nil},
		{"empty email", Policy{Emails: []string{""}}, []string{"--allow-email entry 1", "empty"}},
		{"email without @", Policy{Emails: []string{"alice"}}, []string{"--allow-email entry 1", "not an email address"}},
		{"email with spaces", Policy{Emails: []string{" a@example.com"}}, []string{"--allow-email", "spaces"}},
		{"empty domain", Policy{Domains: []string{"example.com", ""}}, []string{"--allow-domain entry 2", "empty"}},
		{"domain with @", Policy{Domains: []string{"@example.com"}}, []string{"--allow-domain entry 1", "'@'"}},
		{"wildcard domain", Policy{Domains: []string{"*.example.com"}}, []string{"--allow-domain", "wildcard"}},
		{"dot domain", Policy{Domains: []string{".example.com"}}, []string{"--allow-domain", "wildcard"}},
		{"empty group", Policy{Groups: []string{""}}, []string{"--allow-group entry 1", "empty"}},
		{"group with spaces", Policy{Groups: []string{"ops "}}, []string{"--allow-group", "spaces"}},
		{"every problem at once", Policy{Emails: []string{"x"}, Domains: []string{"a@b"}, Groups: []string{""}},
			[]string{"--allow-email", "--allow-domain", "--allow-group"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLooksLikeEmail(t *testing.T) {
	for s, want := range map[string]bool{
		"bob@example.com":          true,
		"bob.smith+tag@ex.co.uk":   true,
		"bob":                      false,
		"bob@":                     false,
		"@example.com":             false,
		"bob@localhost":            false,
		"bob@example.":             false,
		"Bob <bob@example.com>":    false,
		"bob smith@example.com":    false,
		"bob@example.com@evil.org": false,
	} {
		if got := looksLikeEmail(s); got != want {
			t.Errorf("looksLikeEmail(%q) = %v, want %v", s, got, want)
		}
	}
}
