package auth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// HashCost is the bcrypt cost HashPassword uses. Apache's "htpasswd -B"
// defaults to 5; 12 costs a few hundred milliseconds per login on current
// hardware, which is what makes a stolen file slow to crack.
const HashCost = 12

// maxLineErrors bounds how many bad lines one error reports, so a file that
// is not an htpasswd file at all does not produce a wall of text.
const maxLineErrors = 10

// dummyHashTail is the salt and hash part of a real bcrypt hash (of a random
// password nobody knows). Check compares unknown users against it, with the
// cost of the file's hashes, so they take as long as known users.
const dummyHashTail = "Hd.lubeD2Sh94TOb4Ns16esrakykWMPH0lwBnwynGiaXsmiz4JQLK"

// bcryptAlphabet is the base64 alphabet bcrypt hashes are written in.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Htpasswd is a set of local users loaded from an Apache "htpasswd -B" file.
// It is immutable once loaded and safe for concurrent use.
type Htpasswd struct {
	users map[string][]byte // username -> bcrypt hash
	dummy []byte            // compared for unknown users

	// compare is bcrypt.CompareHashAndPassword; tests observe it to prove
	// that unknown users pay for a comparison too.
	compare func(hash, password []byte) error
}

// LoadHtpasswd reads path. Lines that are not user:bcrypt-hash are errors
// naming the line number; comments (#) and blank lines are skipped.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read htpasswd file: %w", err)
	}
	return ParseHtpasswd(path, data)
}

// ParseHtpasswd parses htpasswd content (name is used in error messages).
// Every bad line is reported (up to a limit), each naming name and its line
// number. Only bcrypt hashes ($2y$, $2a$, $2b$) are accepted; the hash
// itself never appears in an error.
func ParseHtpasswd(name string, data []byte) (*Htpasswd, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM from Windows editors
	h := &Htpasswd{users: make(map[string][]byte), compare: bcrypt.CompareHashAndPassword}
	firstLine := make(map[string]int)
	var errs []error
	bad := 0
	report := func(line int, format string, args ...any) {
		bad++
		if bad <= maxLineErrors {
			errs = append(errs, fmt.Errorf("htpasswd file %s line %d: %s", name, line, fmt.Sprintf(format, args...)))
		}
	}
	maxCost := 0
	for i, raw := range strings.Split(string(data), "\n") {
		lineNo := i + 1
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			report(lineNo, "not of the form user:hash (missing ':')")
			continue
		}
		if err := checkUser(user); err != nil {
			report(lineNo, "%v", err)
			continue
		}
		cost, err := checkHash(hash)
		if err != nil {
			report(lineNo, "user %q: %v", user, err)
			continue
		}
		if first, dup := firstLine[user]; dup {
			report(lineNo, "user %q is listed twice (first on line %d)", user, first)
			continue
		}
		firstLine[user] = lineNo
		h.users[user] = []byte(hash)
		maxCost = max(maxCost, cost)
	}
	if bad > maxLineErrors {
		errs = append(errs, fmt.Errorf("htpasswd file %s: %d more bad lines not shown", name, bad-maxLineErrors))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if maxCost == 0 {
		maxCost = HashCost
	}
	// The highest cost in the file: an unknown user is never faster than a
	// known one. (A file mixing costs reveals the cost of each user anyway.)
	h.dummy = fmt.Appendf(nil, "$2y$%02d$%s", maxCost, dummyHashTail)
	return h, nil
}

// checkHash accepts a bcrypt hash as written by "htpasswd -B" and returns its
// cost. Other formats get an error that says what they are and what to do.
func checkHash(hash string) (int, error) {
	const onlyBcrypt = "only bcrypt is accepted (create the line with \"htpasswd -B\" or \"postern hash-password\")"
	kind := ""
	switch {
	case hash == "":
		return 0, errors.New("empty password hash; " + onlyBcrypt)
	case strings.HasPrefix(hash, "{SHA}"):
		kind = "a SHA-1 ({SHA}) hash"
	case strings.HasPrefix(hash, "$apr1$"):
		kind = "an MD5 ($apr1$) hash"
	case strings.HasPrefix(hash, "$1$"), strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"):
		kind = "a crypt(3) hash"
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		return checkBcrypt(hash)
	case strings.HasPrefix(hash, "$"):
		kind = "an unsupported hash"
	case len(hash) == 13 && strings.Trim(hash, bcryptAlphabet) == "":
		kind = "a DES crypt hash or a plain-text password"
	default:
		kind = "a plain-text password or an unknown hash"
	}
	return 0, fmt.Errorf("has %s; %s", kind, onlyBcrypt)
}

// checkBcrypt checks the shape of "$2y$CC$" + 53 characters, so that a
// truncated or mangled line fails at startup rather than at every login.
func checkBcrypt(hash string) (int, error) {
	const size = 60
	if len(hash) != size {
		return 0, fmt.Errorf("bcrypt hash has %d characters, want %d (truncated or mangled line?)", len(hash), size)
	}
	if hash[6] != '$' || strings.Trim(hash[4:6], "0123456789") != "" || strings.Trim(hash[7:], bcryptAlphabet) != "" {
		return 0, errors.New("bcrypt hash is malformed")
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return 0, fmt.Errorf("bcrypt hash has a bad cost: %w", err)
	}
	return cost, nil
}

// checkUser rejects names that cannot round-trip through an htpasswd file or
// that would be unsafe in the identity headers sent upstream.
func checkUser(user string) error {
	switch {
	case user == "":
		return errors.New("user name is empty")
	case !utf8.ValidString(user):
		return errors.New("user name is not valid UTF-8")
	case strings.ContainsRune(user, ':'):
		return errors.New("user name contains ':'")
	case strings.IndexFunc(user, unicode.IsControl) >= 0:
		return errors.New("user name contains a control character (newline, tab, ...)")
	case strings.TrimSpace(user) != user:
		return errors.New("user name starts or ends with a space")
	case strings.HasPrefix(user, "#"):
		return errors.New("user name starts with '#' (it would read as a comment)")
	}
	return nil
}

// Len returns the number of users.
func (h *Htpasswd) Len() int {
	if h == nil {
		return 0
	}
	return len(h.users)
}

// Check verifies a username and password. Unknown users cost the same time as
// known ones. It returns ErrBadCredentials on any mismatch. A nil Htpasswd
// knows no users.
func (h *Htpasswd) Check(user, password string) (Identity, error) {
	if h == nil || password == "" {
		return Identity{}, ErrBadCredentials
	}
	hash, known := h.users[user]
	if !known {
		hash = h.dummy
	}
	// Passwords over 72 bytes are compared on their first 72, as Apache does,
	// so users whose file came from Apache keep working.
	err := h.compare(hash, []byte(password))
	if !known || err != nil {
		return Identity{}, ErrBadCredentials
	}
	id := Identity{User: user, Subject: user}
	if looksLikeEmail(user) {
		id.Email = user
	}
	return id, nil
}

// HashPassword returns the htpasswd line "user:$2y$..." (bcrypt, cost
// HashCost), readable by Apache and by LoadHtpasswd. It refuses user names
// that do not fit in an htpasswd line and passwords that are empty or longer
// than bcrypt's 72-byte limit.
func HashPassword(user, password string) (string, error) {
	return hashPassword(user, password, HashCost)
}

func hashPassword(user, password string, cost int) (string, error) {
	if err := checkUser(user); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	if password == "" {
		return "", errors.New("hash password: password is empty")
	}
	if len(password) > 72 {
		return "", fmt.Errorf("hash password: password is %d bytes long; bcrypt uses at most 72 bytes, choose a shorter one", len(password))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	// Go writes $2a$, Apache $2y$: the same algorithm, and the prefix every
	// htpasswd reader knows.
	hash[2] = 'y'
	return user + ":" + string(hash), nil
}
