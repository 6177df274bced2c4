package bearer

import (
	"context"
	"crypto"
	"crypto/sha256"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/postern/postern/auth"
)

// CacheSize is how many verified tokens a Verifier remembers (the most
// recently used). An API client sends the same token for many requests:
// remembering it saves an RS256 verification per request.
const CacheSize = 10000

// verified is a token that passed every check: who it names, until when,
// and the key that verified it.
type verified struct {
	id  auth.Identity
	exp time.Time
	kid string
	key crypto.PublicKey
}

// tokenCache maps the SHA-256 of a token (never the token itself) to what
// its verification found. An entry is used only before the token's exp and
// only while the issuer's key set still holds the same key under the same
// kid: a rotation that drops the key refuses the token at once.
type tokenCache struct {
	lru *lru.Cache[[sha256.Size]byte, verified]
}

func newTokenCache() *tokenCache {
	l, err := lru.New[[sha256.Size]byte, verified](CacheSize)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &tokenCache{lru: l}
}

// keyLookup finds the issuer's current key for a kid (oidc.Remote.Key).
type keyLookup func(ctx context.Context, kid string) (any, error)

// get returns the identity of a token verified before, if it may still be
// trusted without verifying it again.
func (c *tokenCache) get(ctx context.Context, sum [sha256.Size]byte, now time.Time, current keyLookup) (auth.Identity, bool) {
	v, ok := c.lru.Get(sum)
	if !ok {
		return auth.Identity{}, false
	}
	if !now.Before(v.exp) {
		c.lru.Remove(sum)
		return auth.Identity{}, false
	}
	k, err := current(ctx, v.kid)
	if err != nil || !sameKey(k, v.key) {
		// The key set changed: verify again (and most likely refuse).
		c.lru.Remove(sum)
		return auth.Identity{}, false
	}
	return v.id, true
}

func (c *tokenCache) add(sum [sha256.Size]byte, v verified) { c.lru.Add(sum, v) }

func sameKey(current any, cached crypto.PublicKey) bool {
	k, ok := current.(interface{ Equal(crypto.PublicKey) bool })
	return ok && cached != nil && k.Equal(cached)
}

// recordKey wraps keys so the caller learns which kid and key verified the
// token.
func recordKey(keys jwt.Keyfunc, kid *string, key *any) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		k, err := keys(t)
		if err == nil {
			*kid, _ = t.Header["kid"].(string)
			*key = k
		}
		return k, err
	}
}
