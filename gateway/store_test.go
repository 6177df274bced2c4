package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
	"github.com/postern/postern/session/redisstore/redistest"
)

// Secrets rotate: a stash and a session made under the old secret stay
// usable after the new one is put first; what is made then uses the new
// secret, so dropping the old one later loses nothing made since.
func TestSecretRotation(t *testing.T) {
	oldSecret, newSecret := bytes.Repeat([]byte("o"), 32), bytes.Repeat([]byte("n"), 32)
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir(), secrets: [][]byte{oldSecret}}
	e.start()
	b := e.browser()
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/old", "text/plain", []byte("made under the old secret"))

	e.stop()
	e.secrets = [][]byte{newSecret, oldSecret}
	e.start()
	b.Follow(b.Login(f, testUser, testPassword), http.StatusOK)
	if got := e.up.Submissions(); len(got) != 1 || string(got[0].Body) != "made under the old secret" {
		t.Fatalf("old stash after rotation: %+v", got)
	}
	// A new stash, sealed under the new secret only.
	b2 := e.browser()
	f2 := b2.SubmitWhileLoggedOut(http.MethodPost, "/new", "text/plain", []byte("made under the new secret"))

	e.stop()
	e.secrets = [][]byte{newSecret}
	e.start()
	b2.Follow(b2.Login(f2, testUser, testPassword), http.StatusOK)
	if got := e.up.Submissions(); len(got) != 2 || string(got[1].Body) != "made under the new secret" {
		t.Fatalf("new stash after dropping the old secret: %+v", got)
	}
	// The first browser's cookie was written under the old secret before
	// the rotation and rewritten since: its session still holds.
	gatewaytest.ExpectStatus(t, b.Do(http.MethodGet, "/still-in", "", nil), http.StatusOK)
}

// The whole flow on Redis, and nothing readable at rest: no body, no
// header, no user name in any key or value.
func TestRedisStoreFlowAndEncryptionAtRest(t *testing.T) {
	e, url, prefix := newRedisEnvAt(t)
	b := e.browser()
	secret := "card=4111111111111111&cvv=123&SECRET-MARKER"
	f := b.SubmitWhileLoggedOut(http.MethodPost, "/pay?order=SECRET-QUERY", "application/x-www-form-urlencoded", []byte(secret))

	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	raw := redis.NewClient(opts)
	defer raw.Close()
	ctx := context.Background()
	keys, err := raw.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("nothing stored in Redis")
	}
	for _, k := range keys {
		var vals []string
		switch typ, _ := raw.Type(ctx, k).Result(); typ {
		case "string":
			v, _ := raw.Get(ctx, k).Result()
			vals = append(vals, v)
		case "hash":
			m, _ := raw.HGetAll(ctx, k).Result()
			for _, v := range m {
				vals = append(vals, v)
			}
		}
		for _, v := range append(vals, k) {
			for _, leak := range []string{"4111111111111111", "SECRET-MARKER", "SECRET-QUERY", "/pay", "x-www-form-urlencoded"} {
				if strings.Contains(v, leak) {
					t.Fatalf("key %s holds %q in the clear", k, leak)
				}
			}
		}
	}
	b.Follow(b.Login(f, testUser, testPassword), http.StatusOK)
	if got := e.up.Submissions(); len(got) != 1 || string(got[0].Body) != secret {
		t.Fatalf("replay over Redis: %+v", got)
	}
}

// newRedisEnv is an env whose store is a real Redis.
func newRedisEnv(t *testing.T, opts ...envOption) *env {
	e, _, _ := newRedisEnvAt(t, opts...)
	return e
}

// newRedisEnvAt is newRedisEnv, also returning the Redis URL and the key
// prefix the gateway's store uses there.
func newRedisEnvAt(t *testing.T, opts ...envOption) (*env, string, string) {
	t.Helper()
	url := redistest.URLForTest(t)
	prefix := "gw-" + session.NewID()[:8]
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir()}
	e.openBackend = func() session.Backend {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := redisstore.Open(ctx, url, redisstore.WithKeyPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	e.start(opts...)
	return e, url, prefix
}
