package filestore

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// Usage grows with what is kept and falls back once it is deleted, so the
// gateway's store budget follows what the store really holds.
func TestUsageFollowsBlobs(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	before, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlob(ctx, "stash:big", []byte("m"), bytes.NewReader(make([]byte, 4<<20)), 8<<20, time.Hour); err != nil {
		t.Fatal(err)
	}
	held, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if held-before < 4<<20 {
		t.Fatalf("usage grew by %d bytes for a 4 MiB blob", held-before)
	}
	if err := s.DeleteBlob(ctx, "stash:big"); err != nil {
		t.Fatal(err)
	}
	after, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after >= held-(3<<20) {
		t.Fatalf("usage %d after delete, %d while held: freed pages not counted", after, held)
	}
}
