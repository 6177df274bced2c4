package session

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func mustSealer(t *testing.T, secrets ...[]byte) *Sealer {
	t.Helper()
	s, err := NewSealer(secrets)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestNewSealerRejectsWeakSecrets(t *testing.T) {
	for name, secrets := range map[string][][]byte{
		"none":        nil,
		"short":       {make([]byte, 31)},
		"short later": {secret(1), make([]byte, 8)},
	} {
		if _, err := NewSealer(secrets); err == nil {
			t.Errorf("%s: NewSealer accepted it", name)
		}
	}
}

func TestSealOpenValue(t *testing.T) {
	s := mustSealer(t, secret(1))
	for _, plain := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte("token"), 1000)} {
		sealed, err := s.Seal("sess:a", plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) > 4 && bytes.Contains(sealed, plain[:5]) {
			t.Fatal("sealed value contains the plaintext")
		}
		got, err := s.Open("sess:a", sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
	a, _ := s.Seal("k", []byte("same"))
	b, _ := s.Seal("k", []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same value are equal: nonce not random")
	}
}

func TestValueTamperAndMove(t *testing.T) {
	s := mustSealer(t, secret(1))
	sealed, err := s.Seal("sess:a", []byte("alice"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := s.Open("sess:a", bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipping byte %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	for _, n := range []int{0, 1, 5, len(sealed) - 1} {
		if _, err := s.Open("sess:a", sealed[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: err = %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := s.Open("sess:b", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened under another entry name: err = %v, want ErrCorrupt", err)
	}
}

func TestValueRotation(t *testing.T) {
	old := mustSealer(t, secret(1))
	rotated := mustSealer(t, secret(2), secret(1))
	onlyNew := mustSealer(t, secret(2))

	sealedOld, _ := old.Seal("k", []byte("v"))
	if got, err := rotated.Open("k", sealedOld); err != nil || string(got) != "v" {
		t.Fatalf("rotated sealer opening an old value = %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal("k", []byte("v"))
	if _, err := old.Open("k", sealedNew); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("rotated sealer seals with the old secret: old sealer opened it (err %v)", err)
	}
	if _, err := onlyNew.Open("k", sealedNew); err != nil {
		t.Fatalf("new secret cannot open what the rotated sealer sealed: %v", err)
	}
	if _, err := onlyNew.Open("k", sealedOld); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a removed secret's value opened: err = %v, want ErrCorrupt", err)
	}
}

func sealStream(t *testing.T, s *Sealer, name string, plain []byte) []byte {
	t.Helper()
	r, err := s.SealStream(name, bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestSealOpenStream(t *testing.T) {
	s := mustSealer(t, secret(1))
	for _, n := range []int{0, 1, 64<<10 - 2, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300_000} {
		plain := bytes.Repeat([]byte("checkout!"), n/9+1)[:n]
		sealed := sealStream(t, s, "stash:x", plain)
		if int64(len(sealed)) != SealedSize(int64(n)) {
			t.Fatalf("%d bytes sealed to %d, SealedSize says %d", n, len(sealed), SealedSize(int64(n)))
		}
		if n > 9 && bytes.Contains(sealed, []byte("checkout!")) {
			t.Fatal("sealed stream contains plaintext")
		}
		got, err := io.ReadAll(s.OpenStream("stash:x", bytes.NewReader(sealed)))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: opened %d bytes, %v", n, len(got), err)
		}
	}
}

func TestStreamTamperMoveTruncate(t *testing.T) {
	s := mustSealer(t, secret(1))
	plain := bytes.Repeat([]byte("a"), 150_000) // three DARE packages
	sealed := sealStream(t, s, "stash:x", plain)
	open := func(name string, data []byte) ([]byte, error) {
		return io.ReadAll(s.OpenStream(name, bytes.NewReader(data)))
	}
	for _, i := range []int{0, 1, 4, 5, 20, 70_000, len(sealed) - 1} {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x80
		if _, err := open("stash:x", bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	for _, n := range []int{0, 3, 5, 100, 65_000, len(sealed) - 1} {
		if _, err := open("stash:x", sealed[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
	// Cutting the stream at a package boundary must not yield a shorter
	// "valid" body either.
	pkg := 16 + 64<<10 + 16
	if _, err := open("stash:x", sealed[:headerLen+pkg]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut at a package boundary: err = %v, want ErrCorrupt", err)
	}
	if _, err := open("stash:y", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("body moved to another entry: err = %v, want ErrCorrupt", err)
	}
	// An empty body moved or truncated is caught too.
	empty := sealStream(t, s, "stash:x", nil)
	if _, err := open("stash:y", empty); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty body moved: err = %v, want ErrCorrupt", err)
	}
	if _, err := open("stash:x", empty[:headerLen]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty body stripped to its header: err = %v, want ErrCorrupt", err)
	}
}

func TestStreamRotation(t *testing.T) {
	old := mustSealer(t, secret(1))
	rotated := mustSealer(t, secret(2), secret(1))
	sealedOld := sealStream(t, old, "res:r", []byte("answer"))
	if got, err := io.ReadAll(rotated.OpenStream("res:r", bytes.NewReader(sealedOld))); err != nil || string(got) != "answer" {
		t.Fatalf("rotated sealer opening an old stream = %q, %v", got, err)
	}
	sealedNew := sealStream(t, rotated, "res:r", []byte("answer"))
	if _, err := io.ReadAll(old.OpenStream("res:r", bytes.NewReader(sealedNew))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("old sealer opened a stream sealed after rotation: err = %v", err)
	}
}

func TestStreamPassesReaderErrors(t *testing.T) {
	s := mustSealer(t, secret(1))
	boom := errors.New("boom")
	r, err := s.SealStream("k", io.MultiReader(strings.NewReader("abc"), &errReader{boom}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Fatalf("SealStream: err = %v, want the source's error", err)
	}
	sealed := sealStream(t, s, "k", []byte("abc"))
	src := io.MultiReader(bytes.NewReader(sealed[:10]), &errReader{boom})
	if _, err := io.ReadAll(s.OpenStream("k", src)); !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenStream: err = %v, want the source's error, not ErrCorrupt", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if len(id) != 22 || strings.ContainsAny(id, "+/=") || !ValidKey(id) {
			t.Fatalf("NewID() = %q: want 22 base64url characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}
