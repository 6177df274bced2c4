package session_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/postern/postern/session"
)

func fullRecord() session.Record {
	at := time.Date(2026, 12, 2, 1, 2, 3, 4, time.UTC)
	return session.Record{User: "ada", Email: "ada@example.com", Groups: []string{"staff", "admins", ""},
		Subject: "sub-1", Method: "oidc", LoginAt: at, Expires: at.Add(time.Hour),
		AccessToken: "at", RefreshToken: "rt", IDToken: "id", TokenExpiry: at.Add(5 * time.Minute)}
}

func sameRecord(t *testing.T, got, want session.Record) {
	t.Helper()
	for _, p := range []*session.Record{&got, &want} {
		p.LoginAt, p.Expires, p.TokenExpiry = p.LoginAt.UTC(), p.Expires.UTC(), p.TokenExpiry.UTC()
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record\n got %+v\nwant %+v", got, want)
	}
}

// Every field survives the compact encoding, and so do empty ones.
func TestSessionRecordRoundTrip(t *testing.T) {
	ctx := context.Background()
	st, _, _ := newStore(t)
	for name, rec := range map[string]session.Record{"full": fullRecord(), "local": {User: "bob", Method: "local"}} {
		if err := st.SaveSession(ctx, name, rec, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetSession(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if rec.LoginAt.IsZero() && !got.LoginAt.IsZero() {
			t.Fatalf("zero time came back as %v", got.LoginAt)
		}
		sameRecord(t, got, rec)
	}
}

// A session written by an earlier version (JSON) is still read: an
// upgrade logs no one out.
func TestSessionRecordWrittenAsJSONIsRead(t *testing.T) {
	ctx := context.Background()
	st, b, _ := newStore(t)
	s, _ := session.NewSealer([][]byte{secret(1)})
	sealed, err := s.Seal("sess:old", []byte(`{"User":"ada","Email":"ada@example.com","Groups":["staff"],"Method":"local","Expires":"2030-01-01T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "sess:old", sealed, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetSession(ctx, "old")
	if err != nil || got.User != "ada" || len(got.Groups) != 1 || !got.Expires.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("old record = %+v, %v", got, err)
	}
}

// A record that is not one of the encodings is corrupt, not a panic.
func TestSessionRecordTruncatedIsCorrupt(t *testing.T) {
	ctx := context.Background()
	st, b, _ := newStore(t)
	s, _ := session.NewSealer([][]byte{secret(1)})
	for _, plain := range [][]byte{{}, {2}, {2, 5, 'a'}, {2, 0, 0, 0, 0, 200}, {9}} {
		sealed, _ := s.Seal("sess:bad", plain)
		if err := b.Set(ctx, "sess:bad", sealed, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetSession(ctx, "bad"); !errors.Is(err, session.ErrCorrupt) {
			t.Fatalf("record %v: err = %v, want ErrCorrupt", plain, err)
		}
	}
}

// Two Stores over one file backend keep sessions in memory; a write or a
// delete through either is seen by both at once.
func TestSessionCacheForgetsOnEveryWrite(t *testing.T) {
	ctx := context.Background()
	a, b, _ := newStore(t)
	s, _ := session.NewSealer([][]byte{secret(1)})
	other := session.NewStore(b, s)
	if err := a.SaveSession(ctx, "sid", session.Record{User: "v1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*session.Store{a, other, a, other} { // read, then from memory
		if got, err := st.GetSession(ctx, "sid"); err != nil || got.User != "v1" {
			t.Fatalf("GetSession = %+v, %v", got, err)
		}
	}
	if err := other.SaveSession(ctx, "sid", session.Record{User: "v2"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*session.Store{a, other} {
		if got, err := st.GetSession(ctx, "sid"); err != nil || got.User != "v2" {
			t.Fatalf("after a write: GetSession = %+v, %v", got, err)
		}
	}
	if err := a.DeleteSession(ctx, "sid"); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*session.Store{a, other} {
		if _, err := st.GetSession(ctx, "sid"); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("after the delete: err = %v, want ErrNotFound", err)
		}
	}
	// Once the file is closed nothing read from it is used.
	if _, err := a.GetSession(ctx, "sid"); !errors.Is(err, session.ErrNotFound) {
		t.Fatal(err)
	}
	if err := a.SaveSession(ctx, "sid2", session.Record{User: "v3"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetSession(ctx, "sid2"); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if _, err := a.GetSession(ctx, "sid2"); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("after Close: err = %v, want ErrUnavailable", err)
	}
}
