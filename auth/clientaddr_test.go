package auth

import "testing"

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"2001:db8:1:2::1":            "2001:db8:1:2::/64",
		"2001:db8:1:2::ffff":         "2001:db8:1:2::/64",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":            "2001:db8:1:3::/64",
		"fe80::1%eth0":               "fe80::/64",
		"::ffff:192.0.2.7":           "192.0.2.7",
		"192.0.2.7:8080":             "192.0.2.7",
		"203.0.113.9":                "203.0.113.9",
		"not an address":             "not an address",
	} {
		if got := AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
