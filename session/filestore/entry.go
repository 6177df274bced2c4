package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"go.etcd.io/bbolt"

	"github.com/postern/postern/session"
)

// bucketEntries holds one small record per stash entry: expiry, sealed
// meta, plaintext replay state, sealed answer meta and the names of its
// body files. The bodies themselves are files (see bodies).
var bucketEntries = []byte("entries")

// entryRecord is an entry as stored in bucketEntries.
type entryRecord struct {
	expiry  int64 // unix nanoseconds
	meta    []byte
	state   []byte
	answer  []byte
	body    string // stash body file, "" once freed
	ansBody string // answer body file, "" when none
}

func (r entryRecord) encode() []byte {
	b := make([]byte, 0, 1+8+5*binary.MaxVarintLen64+len(r.meta)+len(r.state)+len(r.answer)+len(r.body)+len(r.ansBody))
	b = append(b, formatVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.expiry))
	for _, f := range [][]byte{r.meta, r.state, r.answer, []byte(r.body), []byte(r.ansBody)} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// decodeEntry copies the record out of v (which lives in the mmap only
// during its transaction).
func decodeEntry(v []byte) (entryRecord, error) {
	if len(v) < 9 || v[0] != formatVersion {
		return entryRecord{}, errBadEntry
	}
	r := entryRecord{expiry: int64(binary.BigEndian.Uint64(v[1:9]))}
	rest := v[9:]
	fields := make([][]byte, 5)
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return entryRecord{}, errBadEntry
		}
		fields[i] = append([]byte{}, rest[k:k+int(n)]...)
		rest = rest[k+int(n):]
	}
	r.meta, r.state, r.answer = fields[0], fields[1], fields[2]
	r.body, r.ansBody = string(fields[3]), string(fields[4])
	if len(r.answer) == 0 {
		r.answer = nil
	}
	return r, nil
}

func (r entryRecord) entry() session.Entry {
	return session.Entry{Meta: r.meta, State: r.state, Answer: r.answer}
}

// liveEntry returns the unexpired entry under key, or ErrNotFound.
func liveEntry(tx *bbolt.Tx, key string, now time.Time) (entryRecord, error) {
	v := tx.Bucket(bucketEntries).Get([]byte(key))
	if v == nil {
		return entryRecord{}, session.ErrNotFound
	}
	r, err := decodeEntry(v)
	if err != nil {
		return entryRecord{}, err
	}
	if now.UnixNano() >= r.expiry {
		return entryRecord{}, session.ErrNotFound
	}
	return r, nil
}

// PutEntry writes the body to its own file (synced and renamed into place),
// then commits the entry that refers to it. An entry already under key is
// replaced and its bodies removed.
func (s *Store) PutEntry(ctx context.Context, key string, meta, state []byte, body io.Reader, limit int64, ttl time.Duration) (int64, error) {
	if err := checkOp(ctx, key); err != nil {
		return 0, err
	}
	if ttl <= 0 {
		return 0, fmt.Errorf("put entry: ttl %s: must be positive", ttl)
	}
	name, n, err := s.bodies.write(ctxReader{ctx, body}, max(limit, 0))
	if err != nil {
		return 0, s.wrapBody("put entry", ctx, err)
	}
	var old entryRecord
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if v := b.Get([]byte(key)); v != nil {
			old, _ = decodeEntry(v)
		}
		rec := entryRecord{expiry: s.now().Add(ttl).UnixNano(), meta: meta, state: state, body: name}
		return b.Put([]byte(key), rec.encode())
	})
	if err != nil {
		s.removeBodies(name)
		return 0, s.wrap("put entry", err)
	}
	s.removeBodies(old.body, old.ansBody)
	return n, nil
}

// ReadEntry returns the entry under key.
func (s *Store) ReadEntry(ctx context.Context, key string) (session.Entry, error) {
	if err := checkOp(ctx, key); err != nil {
		return session.Entry{}, err
	}
	var rec entryRecord
	now := s.now()
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		rec, err = liveEntry(tx, key, now)
		return err
	})
	if err != nil {
		return session.Entry{}, s.wrap("read entry", err)
	}
	return rec.entry(), nil
}

// UpdateEntry runs decide inside one bbolt write transaction, committed
// (and synced) before it returns. Body files freed by the change are
// removed after the commit.
func (s *Store) UpdateEntry(ctx context.Context, key string, decide session.Decide) (session.Entry, error) {
	if err := checkOp(ctx, key); err != nil {
		return session.Entry{}, err
	}
	e, _, err := s.update(key, decide, nil)
	if r, ok := err.(refusal); ok {
		return e, r.err // decide's own answer, not a failure of the file
	}
	if err != nil {
		return e, s.wrap("update entry", err)
	}
	return e, nil
}

// refusal carries decide's error out of a bbolt transaction untouched.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }

// PutAnswer writes the answer's body to its own file, then commits decide's
// change with the answer in one transaction. If decide refuses, the file
// is removed.
func (s *Store) PutAnswer(ctx context.Context, key string, answer []byte, body io.Reader, limit int64, decide session.Decide) (int64, error) {
	if err := checkOp(ctx, key); err != nil {
		return 0, err
	}
	name, n, err := s.bodies.write(ctxReader{ctx, body}, max(limit, 0))
	if err != nil {
		return 0, s.wrapBody("put answer", ctx, err)
	}
	_, _, err = s.update(key, decide, func(r *entryRecord) []string {
		old := r.ansBody
		r.answer, r.ansBody = answer, name
		return []string{old}
	})
	if err != nil {
		s.removeBodies(name)
		if r, ok := err.(refusal); ok {
			return 0, r.err
		}
		return 0, s.wrap("put answer", err)
	}
	return n, nil
}

// update is one write transaction: decide, then the state, ch and (if set)
// also applied to the record; it returns the entry decide was given.
func (s *Store) update(key string, decide session.Decide, also func(*entryRecord) []string) (session.Entry, entryRecord, error) {
	var (
		given session.Entry
		rec   entryRecord
		freed []string
	)
	now := s.now()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		freed = nil
		var err error
		rec, err = liveEntry(tx, key, now)
		if err != nil {
			return err
		}
		given = rec.entry()
		next, ch, err := decide(rec.entry())
		if err != nil {
			return refusal{err}
		}
		rec.state = next
		if ch.Free&session.BodyStash != 0 && rec.body != "" {
			freed = append(freed, rec.body)
			rec.body = ""
		}
		if ch.Free&session.BodyAnswer != 0 && rec.ansBody != "" {
			freed = append(freed, rec.ansBody)
			rec.ansBody = ""
		}
		if also != nil {
			freed = append(freed, also(&rec)...)
		}
		if ch.Keep > 0 {
			rec.expiry = max(rec.expiry, now.Add(ch.Keep).UnixNano())
		}
		return tx.Bucket(bucketEntries).Put([]byte(key), rec.encode())
	})
	if err != nil {
		return given, rec, err
	}
	s.removeBodies(freed...)
	return given, rec, nil
}

// OpenBody opens one body file of the entry under key.
func (s *Store) OpenBody(ctx context.Context, key string, which session.Bodies) (io.ReadCloser, error) {
	if err := checkOp(ctx, key); err != nil {
		return nil, err
	}
	var name string
	now := s.now()
	err := s.db.View(func(tx *bbolt.Tx) error {
		rec, err := liveEntry(tx, key, now)
		if err != nil {
			return err
		}
		switch which {
		case session.BodyStash:
			name = rec.body
		case session.BodyAnswer:
			name = rec.ansBody
		default:
			return fmt.Errorf("open body: unknown body %d", which)
		}
		if name == "" {
			return fmt.Errorf("body freed: %w", session.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("open body", err)
	}
	f, err := s.bodies.open(name)
	if err != nil {
		return nil, s.wrap("open body", err)
	}
	return f, nil
}

// removeBodies removes freed body files; a failure is logged, and the file
// is removed at the next Open.
func (s *Store) removeBodies(names ...string) {
	if err := s.bodies.remove(names...); err != nil {
		s.log.Warn("filestore: removing a freed body file failed; it is removed at the next start", "err", err)
	}
}

// wrapBody is wrap for errors of a body write: the caller's reader and
// context failures are not the store's.
func (s *Store) wrapBody(op string, ctx context.Context, err error) error {
	var be bodyError
	if errors.As(err, &be) || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return fmt.Errorf("filestore %s: %w", op, err)
	}
	return s.wrap(op, err)
}

// ctxReader fails reads once ctx is done, so a cancelled upload stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
