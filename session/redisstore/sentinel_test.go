package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postern/postern/session/redisstore/redistest"

	"github.com/postern/postern/session"
)

// TestSentinel reaches the master through a real Redis Sentinel, by the
// redis-sentinel:// URL form.
func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, "main", master.Addr())
	tt := testTarget{url: "redis-sentinel://" + sentinel.Addr() + "/0?master=main", prefix: "sentinel"}
	b := openStore(t, tt)
	ctx := context.Background()

	body := randomBytes(2*chunk+1, 8)
	if _, err := b.PutBlob(ctx, "s", []byte("m"), bytes.NewReader(body), 1<<20, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The data is on the master the sentinel named.
	raw := rawClient(t, testTarget{url: master.URL()})
	if keys := keysWithPrefix(t, raw, tt.prefix); len(keys) != 4 {
		t.Fatalf("keys on the master: %v, want meta and 3 chunks", keys)
	}
	if _, got := takeAll(t, b, "s"); !bytes.Equal(got, body) {
		t.Fatal("body differs through sentinel")
	}
	if _, _, err := b.TakeBlob(ctx, "s"); !errors.Is(err, session.ErrTaken) {
		t.Fatalf("second take: %v, want ErrTaken", err)
	}
}
