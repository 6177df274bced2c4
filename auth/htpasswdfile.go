package auth

import (
	"fmt"
	"sync/atomic"
)

// HtpasswdFile is an htpasswd file that can be re-read while the gateway
// runs: Reload swaps in the new users at once, or keeps the previous ones
// when the file cannot be used. It is safe for concurrent use.
type HtpasswdFile struct {
	path  string
	users atomic.Pointer[Htpasswd]
}

// OpenHtpasswdFile reads path; a file that cannot be read or parsed, or that
// lists no users, is an error.
func OpenHtpasswdFile(path string) (*HtpasswdFile, error) {
	f := &HtpasswdFile{path: path}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file's path.
func (f *HtpasswdFile) Path() string { return f.path }

// Reload re-reads the file and returns how many users it now lists. When the
// file cannot be read, does not parse, or lists no users (an editor caught
// half-way through writing it, a wrong file copied over it), the previous
// users stay and the error says why.
func (f *HtpasswdFile) Reload() (int, error) {
	users, err := LoadHtpasswd(f.path)
	if err != nil {
		return 0, err
	}
	if users.Len() == 0 {
		return 0, fmt.Errorf("htpasswd file %s lists no users", f.path)
	}
	f.users.Store(users)
	return users.Len(), nil
}

// Check verifies a username and password against the current users.
func (f *HtpasswdFile) Check(user, password string) (Identity, error) {
	return f.users.Load().Check(user, password)
}

// Has reports whether user is listed in the current users, so a session of
// a user removed from the file can be ended.
func (f *HtpasswdFile) Has(user string) bool {
	return f.users.Load().Has(user)
}

// Has reports whether user is listed. A nil Htpasswd lists nobody.
func (h *Htpasswd) Has(user string) bool {
	if h == nil {
		return false
	}
	_, ok := h.users[user]
	return ok
}
