package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/postern/postern/session"
)

const (
	// chunkSize is the unit a body is stored and read in.
	chunkSize = 64 << 10
	// batchChunks is how many chunks one write transaction commits: large
	// enough to amortise the fsync, small enough to bound memory (1 MiB).
	batchChunks = 16

	statePending = 0
	stateTaken   = 1

	// blob header: version, state, expiry, upload id, chunk count, size.
	blobHeaderLen = 1 + 1 + 8 + 8 + 8 + 8
)

// errUploadGone means a blob's upload was removed while it was written
// (the sweeper found it past its deadline).
var errUploadGone = errors.New("upload expired before it completed")

// blobHeader is the metadata record of a complete blob.
type blobHeader struct {
	state   byte
	expiry  int64 // unix nanoseconds
	upload  uint64
	nchunks uint64
	size    int64
}

func (h blobHeader) encode(meta []byte) []byte {
	b := make([]byte, blobHeaderLen, blobHeaderLen+len(meta))
	b[0] = formatVersion
	b[1] = h.state
	binary.BigEndian.PutUint64(b[2:], uint64(h.expiry))
	binary.BigEndian.PutUint64(b[10:], h.upload)
	binary.BigEndian.PutUint64(b[18:], h.nchunks)
	binary.BigEndian.PutUint64(b[26:], uint64(h.size))
	return append(b, meta...)
}

func decodeBlob(v []byte) (blobHeader, []byte, error) {
	if len(v) < blobHeaderLen || v[0] != formatVersion {
		return blobHeader{}, nil, errBadEntry
	}
	return blobHeader{
		state:   v[1],
		expiry:  int64(binary.BigEndian.Uint64(v[2:])),
		upload:  binary.BigEndian.Uint64(v[10:]),
		nchunks: binary.BigEndian.Uint64(v[18:]),
		size:    int64(binary.BigEndian.Uint64(v[26:])),
	}, v[blobHeaderLen:], nil
}

// liveBlob returns the header and meta of the blob under key, or ErrNotFound
// if it is missing or expired at now. meta points into the transaction.
func liveBlob(tx *bbolt.Tx, key string, now time.Time) (blobHeader, []byte, error) {
	v := tx.Bucket(bucketBlobs).Get([]byte(key))
	if v == nil {
		return blobHeader{}, nil, session.ErrNotFound
	}
	h, meta, err := decodeBlob(v)
	if err != nil {
		return blobHeader{}, nil, err
	}
	if now.UnixNano() >= h.expiry {
		return blobHeader{}, nil, session.ErrNotFound
	}
	return h, meta, nil
}

func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

// bodyError marks an error from the caller's body reader, which is not the
// store's failure.
type bodyError struct{ err error }

func (e bodyError) Error() string { return "read body: " + e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

// PutBlob stores meta and the body under key. The body is written in
// transactions of up to 1 MiB under a fresh upload id, and the blob's
// metadata record, which makes it visible, is written last. A body over
// limit, a failing body reader or a cancelled ctx removes what was written.
// A blob already under key is replaced. The blob expires ttl after it is
// complete.
func (s *Store) PutBlob(ctx context.Context, key string, meta []byte, body io.Reader, limit int64, ttl time.Duration) (int64, error) {
	if err := checkOp(ctx, key); err != nil {
		return 0, err
	}
	if ttl <= 0 {
		return 0, fmt.Errorf("put blob: ttl %s: must be positive", ttl)
	}
	limit = max(limit, 0)
	upload, err := s.startUpload(ttl)
	if err != nil {
		return 0, s.wrap("put blob", err)
	}
	size, nchunks, err := s.writeChunks(ctx, upload, io.LimitReader(body, limit+1), limit)
	if err == nil {
		err = s.finishUpload(key, meta, upload, nchunks, size, ttl)
	}
	if err != nil {
		if aerr := s.abortUpload(upload); aerr != nil {
			s.log.Warn("filestore: removing a failed upload; the sweeper will retry", "err", aerr)
		}
		var be bodyError
		if errors.As(err, &be) || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
			return 0, fmt.Errorf("filestore put blob: %w", err)
		}
		return 0, s.wrap("put blob", err)
	}
	return size, nil
}

func (s *Store) startUpload(ttl time.Duration) (uint64, error) {
	var upload uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		ups := tx.Bucket(bucketUploads)
		id, err := ups.NextSequence()
		if err != nil {
			return err
		}
		upload = id
		// An abandoned upload is swept after this; the finished blob's ttl
		// counts from its completion.
		if err := ups.Put(u64(id), u64(uint64(s.now().Add(ttl+session.UploadGrace).UnixNano()))); err != nil {
			return err
		}
		_, err = tx.Bucket(bucketChunks).CreateBucket(u64(id))
		return err
	})
	return upload, err
}

// writeChunks copies body into the upload's chunks, batchChunks per
// transaction. The buffers are reused across transactions: bbolt needs a
// value to stay unchanged only until its transaction commits.
func (s *Store) writeChunks(ctx context.Context, upload uint64, body io.Reader, limit int64) (size int64, nchunks uint64, err error) {
	// Buffers are made as the body needs them: a small body costs one chunk,
	// not a whole batch.
	bufs := make([][]byte, batchChunks)
	lens := make([]int, batchChunks)
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		filled := 0
		for filled < batchChunks && !done {
			if bufs[filled] == nil {
				bufs[filled] = make([]byte, chunkSize)
			}
			n, err := io.ReadFull(body, bufs[filled])
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				done = true
			case err != nil:
				return 0, 0, bodyError{err}
			}
			if n > 0 {
				lens[filled] = n
				filled++
				size += int64(n)
			}
		}
		if size > limit {
			return 0, 0, session.ErrTooLarge
		}
		if filled == 0 {
			break
		}
		err := s.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketChunks).Bucket(u64(upload))
			if b == nil {
				return errUploadGone
			}
			for i := 0; i < filled; i++ {
				if err := b.Put(u64(nchunks+uint64(i)), bufs[i][:lens[i]]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
		nchunks += uint64(filled)
	}
	return size, nchunks, nil
}

// finishUpload makes the blob visible in one transaction: the upload stops
// being an upload and becomes the blob under key.
func (s *Store) finishUpload(key string, meta []byte, upload, nchunks uint64, size int64, ttl time.Duration) error {
	h := blobHeader{state: statePending, expiry: s.now().Add(ttl).UnixNano(), upload: upload, nchunks: nchunks, size: size}
	rec := h.encode(meta)
	return s.db.Update(func(tx *bbolt.Tx) error {
		ups := tx.Bucket(bucketUploads)
		if ups.Get(u64(upload)) == nil {
			return errUploadGone
		}
		if err := ups.Delete(u64(upload)); err != nil {
			return err
		}
		if err := deleteBlobTx(tx, key); err != nil {
			return err
		}
		return tx.Bucket(bucketBlobs).Put([]byte(key), rec)
	})
}

func (s *Store) abortUpload(upload uint64) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		return dropUploadTx(tx, upload)
	})
}

// dropUploadTx removes an upload's record and chunks, whichever exist.
func dropUploadTx(tx *bbolt.Tx, upload uint64) error {
	if err := tx.Bucket(bucketUploads).Delete(u64(upload)); err != nil {
		return err
	}
	err := tx.Bucket(bucketChunks).DeleteBucket(u64(upload))
	if err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

// deleteBlobTx removes the blob under key and its chunks, if it exists.
func deleteBlobTx(tx *bbolt.Tx, key string) error {
	blobs := tx.Bucket(bucketBlobs)
	v := blobs.Get([]byte(key))
	if v == nil {
		return nil
	}
	h, _, err := decodeBlob(v)
	if err == nil {
		if err := dropUploadTx(tx, h.upload); err != nil {
			return err
		}
	}
	return blobs.Delete([]byte(key))
}

// TakeBlob marks the blob under key taken (pending -> taken, in one write
// transaction, so exactly one caller wins) and returns its meta and a reader
// of its body. The reader fetches one chunk per read transaction, so it
// holds at most one chunk in memory and never blocks writers for long.
func (s *Store) TakeBlob(ctx context.Context, key string) ([]byte, io.ReadCloser, error) {
	if err := checkOp(ctx, key); err != nil {
		return nil, nil, err
	}
	var meta []byte
	var h blobHeader
	now := s.now()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		var m []byte
		var err error
		h, m, err = liveBlob(tx, key, now)
		if err != nil {
			return err
		}
		if h.state == stateTaken {
			return session.ErrTaken
		}
		meta = append([]byte{}, m...)
		h.state = stateTaken
		// The body must stay readable to the end of the replay: the
		// sweeper does not remove it before then.
		if least := now.Add(session.TakenTTL).UnixNano(); h.expiry < least {
			h.expiry = least
		}
		return tx.Bucket(bucketBlobs).Put([]byte(key), h.encode(meta))
	})
	if err != nil {
		return nil, nil, s.wrap("take blob", err)
	}
	return meta, &chunkReader{s: s, upload: h.upload, nchunks: h.nchunks}, nil
}

// RestoreBlob returns a taken blob to pending, so one TakeBlob can succeed
// again. A pending blob stays pending; a missing or expired one is
// session.ErrNotFound.
func (s *Store) RestoreBlob(ctx context.Context, key string) error {
	if err := checkOp(ctx, key); err != nil {
		return err
	}
	now := s.now()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		h, meta, err := liveBlob(tx, key, now)
		if err != nil {
			return err
		}
		if h.state == statePending {
			return nil
		}
		h.state = statePending
		return tx.Bucket(bucketBlobs).Put([]byte(key), h.encode(append([]byte{}, meta...)))
	})
	return s.wrap("restore blob", err)
}

// DeleteBlob removes the blob under key and its body, taken or not.
func (s *Store) DeleteBlob(ctx context.Context, key string) error {
	if err := checkOp(ctx, key); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return deleteBlobTx(tx, key)
	})
	return s.wrap("delete blob", err)
}

// chunkReader streams a blob's chunks, one read transaction per chunk.
type chunkReader struct {
	s       *Store
	upload  uint64
	nchunks uint64

	mu     sync.Mutex
	next   uint64 // index of the next chunk to fetch
	buf    []byte // unread rest of the current chunk
	store  []byte // backing array for buf, one chunk
	closed bool
	err    error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errors.New("filestore: read after close")
	}
	if r.err != nil {
		return 0, r.err
	}
	if len(r.buf) == 0 {
		if r.next >= r.nchunks {
			return 0, io.EOF
		}
		if r.err = r.fetch(); r.err != nil {
			return 0, r.err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *chunkReader) fetch() error {
	if r.store == nil {
		r.store = make([]byte, chunkSize)
	}
	err := r.s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketChunks).Bucket(u64(r.upload))
		if b == nil {
			return fmt.Errorf("blob removed while it was read: %w", session.ErrNotFound)
		}
		v := b.Get(u64(r.next))
		if v == nil || len(v) > len(r.store) {
			return fmt.Errorf("blob chunk missing: %w", errBadEntry)
		}
		r.buf = r.store[:copy(r.store, v)]
		return nil
	})
	if err != nil {
		return r.s.wrap("read blob", err)
	}
	r.next++
	return nil
}

// Close releases the reader; the blob stays taken until it is deleted or
// restored.
func (r *chunkReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.buf, r.store = nil, nil
	return nil
}
