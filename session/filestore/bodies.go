package filestore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/postern/postern/session"
)

// bodies is the folder beside the database file that holds every entry body
// (a stashed submission's, a kept answer's) as its own file, so bbolt keeps
// only small records: its file stays small, its memory map is never touched
// by a body, and a large upload does not hold bbolt's writer lock.
//
// A body is written to a temporary file, synced, renamed to its final,
// random name and the folder synced; only then does a bbolt transaction
// refer to it. A file no entry refers to (a crash between the two steps, or
// between a transaction that freed a body and the removal of its file) is
// removed when the store opens.
type bodies struct {
	dir   string
	bytes atomic.Int64 // bytes in body files, for Usage
}

const (
	tmpPrefix  = ".tmp-"
	bodySuffix = ".body"
	// bodyBuffer is the unit a body is copied in.
	bodyBuffer = 64 << 10
)

func openBodies(dbPath string) (*bodies, error) {
	b := &bodies{dir: dbPath + ".bodies"}
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return nil, err
	}
	return b, nil
}

func newBodyName() string {
	var r [16]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:]) + bodySuffix
}

// write copies at most limit bytes of src into a new body file and returns
// its name and length. A body over limit is session.ErrTooLarge; an error
// of src is a bodyError. Nothing is left behind on failure.
func (b *bodies) write(src io.Reader, limit int64) (name string, n int64, err error) {
	f, err := os.CreateTemp(b.dir, tmpPrefix+"*")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	buf := make([]byte, bodyBuffer)
	for {
		m, rerr := src.Read(buf)
		if m > 0 {
			n += int64(m)
			if n > limit {
				return "", 0, session.ErrTooLarge
			}
			if _, err := f.Write(buf[:m]); err != nil {
				return "", 0, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", 0, bodyError{rerr}
		}
	}
	if err := f.Sync(); err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	name = newBodyName()
	if err := os.Rename(tmp, filepath.Join(b.dir, name)); err != nil {
		return "", 0, err
	}
	if err := syncDir(b.dir); err != nil {
		_ = os.Remove(filepath.Join(b.dir, name))
		return "", 0, err
	}
	b.bytes.Add(n)
	return name, n, nil
}

// open returns a reader of the body file name.
func (b *bodies) open(name string) (io.ReadCloser, error) {
	if !validBodyName(name) {
		return nil, errBadEntry
	}
	f, err := os.Open(filepath.Join(b.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("body file gone: %w", session.ErrNotFound)
	}
	return f, err
}

// remove deletes body files; one already gone is not an error. A reader
// opened before keeps reading (the file lives until it is closed).
func (b *bodies) remove(names ...string) error {
	var errs []error
	for _, name := range names {
		if name == "" || !validBodyName(name) {
			continue
		}
		p := filepath.Join(b.dir, name)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if fi != nil {
			b.bytes.Add(-fi.Size())
		}
	}
	return errors.Join(errs...)
}

// clean removes every file in the folder that keep does not name (temporary
// files and bodies no entry refers to) and counts the bytes of the rest.
// Only at Open, before any body is written.
func (b *bodies) clean(keep map[string]bool) (removed int, err error) {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return 0, err
	}
	var total int64
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if keep[name] && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				total += fi.Size()
			}
			continue
		}
		if !e.Type().IsRegular() || !(strings.HasPrefix(name, tmpPrefix) || strings.HasSuffix(name, bodySuffix)) {
			continue // not ours: leave it
		}
		if err := os.Remove(filepath.Join(b.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	b.bytes.Store(total)
	return removed, errors.Join(errs...)
}

func validBodyName(name string) bool {
	return strings.HasSuffix(name, bodySuffix) && !strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, ".")
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
