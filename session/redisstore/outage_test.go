package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/postern/postern/session/redisstore/redistest"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
)

// TestOutageAndRecovery stops Redis under a live Store: every call fails
// with ErrUnavailable (the gateway's 503), and once Redis is back on the same
// port the same Store serves again, with the blob stored before the outage.
func TestOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	// No command retries: each failing call returns after one round of dials.
	tt := testTarget{url: srv.URL() + "?max_retries=-1", prefix: "outage"}
	b := openStore(t, tt)
	ctx := context.Background()

	body := randomBytes(3*chunk+17, 5)
	if _, err := b.PutBlob(ctx, "kept", []byte("meta"), bytes.NewReader(body), 1<<20, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "rec", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}

	srv.Stop()

	calls := map[string]func(ctx context.Context) error{
		"Ping": b.Ping,
		"Get": func(ctx context.Context) error {
			_, err := b.Get(ctx, "rec")
			return err
		},
		"Set":    func(ctx context.Context) error { return b.Set(ctx, "rec2", []byte("v"), time.Hour) },
		"Delete": func(ctx context.Context) error { return b.Delete(ctx, "rec2") },
		"GetDelete": func(ctx context.Context) error {
			_, err := b.GetDelete(ctx, "rec")
			return err
		},
		"PutBlob": func(ctx context.Context) error {
			_, err := b.PutBlob(ctx, "new", nil, bytes.NewReader(body), 1<<20, time.Hour)
			return err
		},
		"TakeBlob": func(ctx context.Context) error {
			_, _, err := b.TakeBlob(ctx, "kept")
			return err
		},
		"RestoreBlob": func(ctx context.Context) error { return b.RestoreBlob(ctx, "kept") },
		"DeleteBlob":  func(ctx context.Context) error { return b.DeleteBlob(ctx, "other") },
	}
	for name, call := range calls {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := call(cctx)
		cancel()
		if !errors.Is(err, session.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := redisstore.Open(octx, tt.url)
	cancel()
	if !errors.Is(err, session.ErrUnavailable) {
		t.Errorf("Open with Redis down: %v, want ErrUnavailable", err)
	}

	srv.Restart(t)

	// The same Store reconnects by itself; give its pool a bounded moment.
	deadline := time.Now().Add(10 * time.Second)
	for b.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 10s: %v", b.Ping(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	meta, rc, err := b.TakeBlob(ctx, "kept")
	if err != nil {
		t.Fatalf("TakeBlob after recovery: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(meta) != "meta" || !bytes.Equal(got, body) {
		t.Fatalf("blob after recovery: meta %q, %d bytes, %v", meta, len(got), err)
	}
	if v, err := b.Get(ctx, "rec"); err != nil || string(v) != "v" {
		t.Fatalf("record after recovery: %q, %v", v, err)
	}
}
