package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
	"github.com/postern/postern/session/redisstore/redistest"
)

// testStore is one store backend the gateway's tests run on.
type testStore struct {
	name string
	// open returns the env's openBackend for t: nil is the file store in
	// the env's directory.
	open func(t *testing.T) func() session.Backend
}

// testStores are the backends the replay tests run on: the file store, and
// a real Redis (POSTERN_TEST_REDIS_URL, or a redis-server of the test's own).
var testStores = []testStore{
	{name: "file", open: func(*testing.T) func() session.Backend { return nil }},
	{name: "redis", open: func(t *testing.T) func() session.Backend { return redisOpener(t, "gw-"+session.NewID()[:8]) }},
}

// redisOpener opens stores on the test's Redis under prefix: every store it
// opens shares the same keys, as replicas of one deployment do.
func redisOpener(t *testing.T, prefix string) func() session.Backend {
	t.Helper()
	url := redistest.URLForTest(t)
	return func() session.Backend {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := redisstore.Open(ctx, url, redisstore.WithKeyPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// onEachStore runs test once on every store backend.
func onEachStore(t *testing.T, test func(t *testing.T, st testStore)) {
	for _, st := range testStores {
		t.Run(st.name, func(t *testing.T) { test(t, st) })
	}
}

// env is a gateway on this store, in front of a new upstream.
func (st testStore) env(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, up: gatewaytest.NewUpstream(t), storeDir: t.TempDir(), openBackend: st.open(t)}
	e.start(opts...)
	return e
}
