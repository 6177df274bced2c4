package auth

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The users of testdata/auth/valid.htpasswd and their passwords.
var fixtureUsers = map[string]string{
	"alice":           "correct horse",  // $2y$05$, Apache htpasswd -B
	"bob@example.com": "battery staple", // $2y$04$, Apache htpasswd -B -C 4
	"carol":           "Tr0ub4dor&3",    // $2a$04$, Go
	"dave":            "pässwörd",       // $2b$04$, indented, CRLF line end
}

func loadFixture(t testing.TB) *Htpasswd {
	t.Helper()
	h, err := LoadHtpasswd(filepath.Join("..", "testdata", "auth", "valid.htpasswd"))
	if err != nil {
		t.Fatalf("LoadHtpasswd: %v", err)
	}
	return h
}

func TestLoadHtpasswdChecksEveryUser(t *testing.T) {
	h := loadFixture(t)
	if h.Len() != len(fixtureUsers) {
		t.Fatalf("Len = %d, want %d", h.Len(), len(fixtureUsers))
	}
	for user, password := range fixtureUsers {
		t.Run(user, func(t *testing.T) {
			id, err := h.Check(user, password)
			if err != nil {
				t.Fatalf("Check(right password): %v", err)
			}
			if id.User != user || id.Subject != user {
				t.Errorf("identity = %+v, want User and Subject %q", id, user)
			}
			if _, err := h.Check(user, password+"x"); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("Check(wrong password) = %v, want ErrBadCredentials", err)
			}
		})
	}
}

func TestCheckSetsEmailForEmailLikeUsers(t *testing.T) {
	h := loadFixture(t)
	id, err := h.Check("bob@example.com", "battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "bob@example.com" {
		t.Errorf("Email = %q, want bob@example.com", id.Email)
	}
	id, err = h.Check("alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "" {
		t.Errorf("Email = %q for a plain username, want empty", id.Email)
	}
}

func TestCheckRefuses(t *testing.T) {
	h := loadFixture(t)
	tests := []struct {
		name, user, password string
	}{
		{"unknown user", "mallory", "correct horse"},
		{"another user's password", "carol", "correct horse"},
		{"empty password", "alice", ""},
		{"empty user", "", "correct horse"},
		{"case differs in user", "Alice", "correct horse"},
		{"case differs in password", "alice", "Correct horse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := h.Check(tt.user, tt.password)
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("Check = %v, want ErrBadCredentials", err)
			}
			if id.User != "" || id.Subject != "" || id.Email != "" {
				t.Errorf("identity %+v returned with an error", id)
			}
		})
	}
	var none *Htpasswd
	if _, err := none.Check("alice", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("nil Htpasswd: Check = %v, want ErrBadCredentials", err)
	}
}

// Unknown users must run a full bcrypt comparison at the file's cost: the
// dummy hash is well-formed (comparison ends in a mismatch, not a parse
// error) and as expensive as the dearest real hash.
func TestUnknownUsersCostAsMuchAsKnownOnes(t *testing.T) {
	h := loadFixture(t)
	cost, err := bcrypt.Cost(h.dummy)
	if err != nil {
		t.Fatalf("dummy hash: %v", err)
	}
	if cost != 5 { // alice's, the highest in the fixture
		t.Errorf("dummy cost = %d, want 5", cost)
	}
	if err := bcrypt.CompareHashAndPassword(h.dummy, []byte("anything")); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		t.Errorf("dummy comparison = %v, want a full comparison ending in a mismatch", err)
	}

	// And Check does compare against it for an unknown user.
	var compared [][]byte
	h.compare = func(hash, password []byte) error {
		compared = append(compared, hash)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	if _, err := h.Check("mallory", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Check(unknown) = %v", err)
	}
	if len(compared) != 1 || string(compared[0]) != string(h.dummy) {
		t.Errorf("Check(unknown) compared against %q, want the dummy hash once", compared)
	}

	empty, err := ParseHtpasswd("empty", []byte("# nobody yet\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(empty.dummy); cost != HashCost {
		t.Errorf("dummy cost of an empty file = %d, want HashCost %d", cost, HashCost)
	}
}

func TestParseHtpasswdErrors(t *testing.T) {
	const good = "$2y$04$xmVGi4b.ZbSKoHOfUVymO.WuRgyPRFSJLIqaFYq4vUSki/THM2xr2"
	tests := []struct {
		name string
		data string
		want []string // substrings of the error
	}{
		{"SHA-1", "# c\nbob:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n", []string{"users.htpasswd line 2", "SHA-1", "only bcrypt", "htpasswd -B"}},
		{"apr1", "bob:$apr1$zBHSpcNd$jHThR0rCZPWeuwetaADul.", []string{"line 1", "MD5", "only bcrypt"}},
		{"DES crypt", "\n\nbob:gC1.hbXlOQmhE", []string{"line 3", "DES crypt", "only bcrypt"}},
		{"SHA-512 crypt", "bob:$6$Fx3WoO24sVFVwFGT$EIDGvMG", []string{"line 1", "crypt(3)", "only bcrypt"}},
		{"plain text", "bob:pw", []string{"line 1", "plain-text", "only bcrypt"}},
		{"empty hash", "bob:", []string{"line 1", "empty password hash"}},
		{"missing colon", "bob", []string{"line 1", "missing ':'"}},
		{"empty user", ":" + good, []string{"line 1", "user name is empty"}},
		{"control character in user", "b\x00b:" + good, []string{"line 1", "control character"}},
		{"space before colon", "bob :" + good, []string{"line 1", "space"}},
		{"duplicate user", "bob:" + good + "\nalice:" + good + "\nbob:" + good, []string{"line 3", `"bob" is listed twice (first on line 1)`}},
		{"truncated bcrypt", "bob:" + good[:40], []string{"line 1", "40 characters, want 60"}},
		{"trailing field", "bob:" + good + ":x", []string{"line 1", "62 characters"}},
		{"bad bcrypt character", "bob:" + good[:59] + "!", []string{"line 1", "malformed"}},
		{"bad cost digits", "bob:$2y$+5" + good[6:], []string{"line 1", "malformed"}},
		{"cost out of range", "bob:$2y$99" + good[6:], []string{"line 1", "bad cost"}},
		{"unknown bcrypt minor", "bob:$2x$04" + good[6:], []string{"line 1", "unsupported hash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHtpasswd("users.htpasswd", []byte(tt.data))
			if err == nil {
				t.Fatalf("ParseHtpasswd succeeded with %d users, want an error", h.Len())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "users.htpasswd") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestParseHtpasswdErrorsNeverShowHashes(t *testing.T) {
	_, err := ParseHtpasswd("f", []byte("bob:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\ncarol:s3cret-plain\ndave:$2y$04$xmVGi4b.ZbSKoHOfUVymO"))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, secret := range []string{"GpHWL3ymc5liWkNopqtdSjuqYHM", "s3cret-plain", "xmVGi4b"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
}

// Every line of other-formats.htpasswd, made with Apache's htpasswd, is a
// format postern refuses; all are reported at once.
func TestParseHtpasswdReportsEveryOtherFormat(t *testing.T) {
	path := filepath.Join("..", "testdata", "auth", "other-formats.htpasswd")
	_, err := LoadHtpasswd(path)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, line := range []string{"line 2:", "line 3:", "line 4:", "line 5:", "line 6:"} {
		if !strings.Contains(err.Error(), path+" "+line) {
			t.Errorf("error does not report %s: %v", line, err)
		}
	}
}

func TestParseHtpasswdBoundsTheReport(t *testing.T) {
	_, err := ParseHtpasswd("junk", []byte(strings.Repeat("not a user line\n", 50)))
	if err == nil {
		t.Fatal("want an error")
	}
	if n := strings.Count(err.Error(), "missing ':'"); n != maxLineErrors {
		t.Errorf("%d lines reported, want %d", n, maxLineErrors)
	}
	if !strings.Contains(err.Error(), "40 more bad lines") {
		t.Errorf("error does not summarise the rest: %v", err)
	}
}

func TestLoadHtpasswdMissingFile(t *testing.T) {
	_, err := LoadHtpasswd(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestHashPasswordRoundTrip(t *testing.T) {
	t.Parallel() // cost 12 takes seconds under -race
	line, err := HashPassword("erin@example.org", "a long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "erin@example.org:$2y$12$") {
		t.Fatalf("line = %q, want user:$2y$12$...", line)
	}
	h, err := ParseHtpasswd("generated", []byte(line+"\n"))
	if err != nil {
		t.Fatalf("own output does not parse: %v", err)
	}
	id, err := h.Check("erin@example.org", "a long passphrase")
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if id.Email != "erin@example.org" {
		t.Errorf("Email = %q", id.Email)
	}
	if _, err := h.Check("erin@example.org", "a long passphrasE"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
}

func TestHashPasswordRefuses(t *testing.T) {
	tests := []struct {
		name, user, password, want string
	}{
		{"empty user", "", "pw", "user name is empty"},
		{"colon in user", "a:b", "pw", "':'"},
		{"newline in user", "a\nb", "pw", "control character"},
		{"carriage return in user", "a\rb", "pw", "control character"},
		{"leading space", " bob", "pw", "space"},
		{"comment", "#bob", "pw", "comment"},
		{"invalid UTF-8", "b\xffb", "pw", "UTF-8"},
		{"empty password", "bob", "", "password is empty"},
		{"password over 72 bytes", "bob", strings.Repeat("p", 73), "72 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, err := HashPassword(tt.user, tt.password)
			if err == nil {
				t.Fatalf("HashPassword = %q, want an error", line)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	// 72 bytes is bcrypt's limit, not beyond it.
	if _, err := hashPassword("bob", strings.Repeat("p", 72), bcrypt.MinCost); err != nil {
		t.Errorf("72-byte password refused: %v", err)
	}
}

// htpasswdTool finds Apache's htpasswd; on CI its absence is a failure.
func htpasswdTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("htpasswd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("htpasswd (Debian package apache2-utils) is required on CI: %v", err)
		}
		t.Skip("htpasswd not on PATH (install apache2-utils); skipping the Apache compatibility check")
	}
	return path
}

func TestApacheHtpasswdCompatibility(t *testing.T) {
	tool := htpasswdTool(t)
	t.Parallel()
	long := strings.Repeat("x", 80) // Apache truncates at 72, as bcrypt does

	t.Run("apache output parses and checks", func(t *testing.T) {
		for _, pw := range []string{"s3cret pass", "pässwörd", long} {
			out, err := exec.Command(tool, "-nbB", "frank", pw).Output()
			if err != nil {
				t.Fatalf("htpasswd -nbB: %v", err)
			}
			h, err := ParseHtpasswd("apache", out)
			if err != nil {
				t.Fatalf("ParseHtpasswd(%q): %v", out, err)
			}
			if _, err := h.Check("frank", pw); err != nil {
				t.Errorf("Check(right password) = %v", err)
			}
			if len(pw) > 72 {
				if _, err := h.Check("frank", pw[:72]); err != nil {
					t.Errorf("Check(first 72 bytes of a long password) = %v; Apache compares only those", err)
				}
			}
			if _, err := h.Check("frank", "!"+pw[1:]); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("Check(wrong password) = %v", err)
			}
		}
	})

	t.Run("our output verifies with apache", func(t *testing.T) {
		line, err := HashPassword("grace", "open sesame")
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "users")
		if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(tool, "-vb", file, "grace", "open sesame").CombinedOutput(); err != nil {
			t.Errorf("htpasswd -vb refused our line: %v: %s", err, out)
		}
		if err := exec.Command(tool, "-vb", file, "grace", "open sesamE").Run(); err == nil {
			t.Error("htpasswd -vb accepted a wrong password; the check above proves nothing")
		}
	})
}

// FuzzParseHtpasswd feeds arbitrary files to the parser: it must not panic,
// and whatever it accepts must be exactly the non-comment lines, each a
// well-formed bcrypt entry.
func FuzzParseHtpasswd(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("..", "testdata", "auth", "*.htpasswd"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed files in testdata/auth: %v", err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("\xef\xbb\xbfbob:$2y$04$xmVGi4b.ZbSKoHOfUVymO.WuRgyPRFSJLIqaFYq4vUSki/THM2xr2"))
	f.Add([]byte("a:b:c\n:\n#\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHtpasswd("fuzz", data)
		if err != nil {
			if h != nil {
				t.Fatal("non-nil Htpasswd with an error")
			}
			return
		}
		lines := 0
		for _, l := range strings.Split(strings.TrimPrefix(string(data), "\xef\xbb\xbf"), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines++
			}
		}
		if h.Len() != lines {
			t.Fatalf("accepted %d users from %d entry lines", h.Len(), lines)
		}
		for user, hash := range h.users {
			if err := checkUser(user); err != nil {
				t.Fatalf("accepted user %q: %v", user, err)
			}
			if _, err := checkBcrypt(string(hash)); err != nil {
				t.Fatalf("accepted hash for %q: %v", user, err)
			}
		}
		if _, err := bcrypt.Cost(h.dummy); err != nil {
			t.Fatalf("dummy hash: %v", err)
		}
	})
}

// BenchmarkCheck compares a known and an unknown user at Apache's default
// cost: the two should take the same time (compare the ratio, not the
// absolute numbers).
func BenchmarkCheck(b *testing.B) {
	h := loadFixture(b)
	for _, bc := range []struct{ name, user, password string }{
		{"known", "alice", "correct horse"},
		{"known-wrong-password", "alice", "wrong"},
		{"unknown", "mallory", "correct horse"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = h.Check(bc.user, bc.password)
			}
		})
	}
}
