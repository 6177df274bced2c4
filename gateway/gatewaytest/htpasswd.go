package gatewaytest

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// HtpasswdLine returns one line of an htpasswd file for user, with a bcrypt
// hash of password at the lowest cost so that logins in tests are fast.
func HtpasswdLine(t testing.TB, user, password string) []byte {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(user + ":" + string(hash) + "\n")
}
