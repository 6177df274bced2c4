package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/postern/postern/session/redisstore/redistest"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
)

// testTarget is a Redis to run a test against: its URL and a key prefix no
// other test uses, so tests can share a server (POSTERN_TEST_REDIS_URL) and
// still SCAN for exactly their own keys.
type testTarget struct {
	url    string
	prefix string
}

// redisForTest returns the Redis named by POSTERN_TEST_REDIS_URL if set,
// else a redis-server started for this test.
func redisForTest(t testing.TB) testTarget {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "postern-test-" + hex.EncodeToString(b[:])
	if u := os.Getenv("POSTERN_TEST_REDIS_URL"); u != "" {
		tt := testTarget{url: u, prefix: prefix}
		// A shared server outlives the test: remove what it left.
		raw := rawClient(t, tt)
		t.Cleanup(func() {
			ctx := context.Background()
			keys, err := scanKeys(ctx, raw, prefix)
			if err == nil && len(keys) > 0 {
				err = raw.Del(ctx, keys...).Err()
			}
			if err != nil {
				t.Errorf("clean up test keys: %v", err)
			}
		})
		return tt
	}
	return testTarget{url: redistest.Start(t).URL(), prefix: prefix}
}

// openStore opens a Store on tt, closed in t.Cleanup.
func openStore(t testing.TB, tt testTarget, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.Open(ctx, tt.url, append([]redisstore.Option{redisstore.WithKeyPrefix(tt.prefix)}, opts...)...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newBackend is the constructor a conformance suite takes:
// sessiontest.Run(t, newBackend) once package sessiontest exists.
func newBackend(t *testing.T) session.Backend {
	return openStore(t, redisForTest(t))
}

// rawClient is a plain go-redis client on tt, for looking under the Store.
func rawClient(t testing.TB, tt testTarget) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(tt.url)
	if err != nil {
		t.Fatalf("raw client: %v", err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// keysWithPrefix lists, with SCAN, every key of this test's prefix.
func keysWithPrefix(t testing.TB, c redis.UniversalClient, prefix string) []string {
	t.Helper()
	keys, err := scanKeys(context.Background(), c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func scanKeys(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	var keys []string
	var cursor uint64
	for i := 0; i < 10000; i++ {
		batch, next, err := c.Scan(ctx, cursor, prefix+":*", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		keys = append(keys, batch...)
		if cursor = next; cursor == 0 {
			return keys, nil
		}
	}
	return nil, errors.New("scan did not finish")
}
