package session

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// MaxKeyLen is the longest key a Backend must accept.
const MaxKeyLen = 200

// NewID returns an unguessable id: 128 random bits from crypto/rand,
// base64url without padding (22 characters).
func NewID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error on supported platforms; it
	// crashes the program irrecoverably instead.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidKey reports whether key is a key every Backend accepts: 1 to
// MaxKeyLen bytes of printable ASCII without spaces.
func ValidKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return false
		}
	}
	return true
}

// entryKey builds the backend key of an entry in namespace ns ("stash:", ...)
// and checks that the id makes a valid key.
func entryKey(ns, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("empty id")
	}
	key := ns + id
	if !ValidKey(key) {
		return "", fmt.Errorf("invalid id: must be printable ascii without spaces, at most %d bytes", MaxKeyLen-len(ns))
	}
	return key, nil
}
