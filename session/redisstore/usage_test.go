package redisstore_test

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// Usage reports Redis's used_memory, which grows with what is kept.
func TestUsageFollowsBlobs(t *testing.T) {
	s := openStore(t, redisForTest(t))
	ctx := context.Background()
	before, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlob(ctx, "stash:usage-big", []byte("m"), bytes.NewReader(make([]byte, 4<<20)), 8<<20, time.Hour); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.DeleteBlob(context.Background(), "stash:usage-big") })
	held, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if held-before < 3<<20 {
		t.Fatalf("used_memory grew by %d bytes for a 4 MiB blob", held-before)
	}
}
