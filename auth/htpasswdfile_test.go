package auth

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestHtpasswdFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	ada, err := hashPassword("ada", "pw-ada", 4)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := hashPassword("bob", "pw-bob", 4)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(ada + "\n")
	f, err := OpenHtpasswdFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Has("ada") || f.Has("bob") {
		t.Fatalf("Has: ada %v bob %v, want true false", f.Has("ada"), f.Has("bob"))
	}

	write(bob + "\n")
	if n, err := f.Reload(); err != nil || n != 1 {
		t.Fatalf("Reload = %d, %v; want 1, nil", n, err)
	}
	if f.Has("ada") || !f.Has("bob") {
		t.Fatalf("after reload: Has ada %v bob %v, want false true", f.Has("ada"), f.Has("bob"))
	}
	if _, err := f.Check("ada", "pw-ada"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("removed user logs in: %v", err)
	}
	if _, err := f.Check("bob", "pw-bob"); err != nil {
		t.Errorf("added user cannot log in: %v", err)
	}

	// A file that does not parse, or that lists nobody, keeps bob.
	for _, bad := range []string{"bob:plaintext\n", "# nobody\n"} {
		write(bad)
		if _, err := f.Reload(); err == nil {
			t.Errorf("Reload of %q: no error", bad)
		}
		if _, err := f.Check("bob", "pw-bob"); err != nil {
			t.Errorf("after a bad file %q the previous users are gone: %v", bad, err)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Reload(); err == nil || !f.Has("bob") {
		t.Errorf("a missing file: err %v, bob kept %v; want an error and bob kept", err, f.Has("bob"))
	}
}
