package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/postern/postern/session"
)

var _ session.Backend = (*Store)(nil)

// Bucket names. Records and blob metadata are keyed by the caller's key;
// uploads and chunks by an upload id (a bbolt sequence number), so a blob
// being written is invisible under its key until it is complete.
var (
	bucketRecords = []byte("records")
	bucketBlobs   = []byte("blobs")
	bucketUploads = []byte("uploads") // upload id -> deadline, while writing
	bucketChunks  = []byte("chunks")  // upload id -> bucket of index -> chunk
)

const (
	formatVersion = 1
	// lockTimeout bounds how long Open waits for another process holding
	// the file, so a second gateway on the same file fails instead of
	// hanging.
	lockTimeout = 2 * time.Second
	// DefaultSweepInterval is how often expired entries are removed unless
	// WithSweepInterval says otherwise.
	DefaultSweepInterval = time.Minute
)

// errBadEntry means an entry on disk is not in a format this version reads.
var errBadEntry = errors.New("malformed entry")

// Store is a session.Backend in a bbolt file. It is safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	bodies *bodies
	now    func() time.Time
	log    *slog.Logger
	hooks  testHooks
	watch  watchers // session.Watcher: this process is the only one

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Option configures Open.
type Option func(*config)

type config struct {
	now      func() time.Time
	interval time.Duration
	log      *slog.Logger
	hooks    testHooks
}

// testHooks let tests in this package drive the sweeper without sleeping.
type testHooks struct {
	tick    <-chan time.Time       // replaces the ticker when set
	onSweep func(n int, err error) // called after each background sweep
}

// WithClock sets the clock that decides expiry (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// WithSweepInterval sets how often the background sweeper removes expired
// entries (default DefaultSweepInterval). Zero or less disables it; Sweep
// can still be called.
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) { c.interval = d }
}

// WithLogger sets where the sweeper reports failures (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

// Open opens (creating if needed) the database file at path, whose directory
// must exist, and starts the sweeper. Close stops it and releases the file.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{now: time.Now, interval: DefaultSweepInterval, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open file store %s: %w: the file is locked by another process (the file store serves one postern process at a time; use Redis for several replicas)", path, session.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open file store %s: %w: %w", path, session.ErrUnavailable, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketBlobs, bucketUploads, bucketChunks, bucketEntries} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open file store %s: %w: %w", path, session.ErrUnavailable, err)
	}
	bodies, err := openBodies(path)
	if err == nil {
		err = cleanBodies(db, bodies)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open file store %s: bodies folder: %w: %w", path, session.ErrUnavailable, err)
	}
	s := &Store{db: db, bodies: bodies, now: cfg.now, log: cfg.log, hooks: cfg.hooks}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	tick := cfg.hooks.tick
	if tick == nil && cfg.interval > 0 {
		t := time.NewTicker(cfg.interval)
		tick = t.C
		s.wg.Add(1)
		go func() {
			<-ctx.Done()
			t.Stop()
			s.wg.Done()
		}()
	}
	if tick != nil {
		s.wg.Add(1)
		go s.sweepLoop(ctx, tick)
	}
	return s, nil
}

// Close stops the sweeper and closes the file. Later calls return the same
// result; operations after Close fail with session.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Nothing read from the file may be used once it is closed.
		_ = s.Changed(context.Background(), "")
		s.stop()
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close file store: %w", err)
		}
	})
	return s.closeErr
}

// Ping reports whether the file can serve requests.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketRecords) == nil {
			return errors.New("records bucket missing")
		}
		return nil
	})
	return s.wrap("ping", err)
}

// Get returns the record under key, or session.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkOp(ctx, key); err != nil {
		return nil, err
	}
	var out []byte
	now := s.now()
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get([]byte(key))
		value, err := decodeRecord(v, now)
		if err != nil {
			return err
		}
		out = append([]byte{}, value...) // v lives in the mmap only during tx
		return nil
	})
	if err != nil {
		return nil, s.wrap("get", err)
	}
	return out, nil
}

// Set stores value under key for ttl, replacing any record.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkOp(ctx, key); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("set: ttl %s: must be positive", ttl)
	}
	rec := make([]byte, 9, 9+len(value))
	rec[0] = formatVersion
	binary.BigEndian.PutUint64(rec[1:9], uint64(s.now().Add(ttl).UnixNano()))
	rec = append(rec, value...)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRecords).Put([]byte(key), rec)
	})
	return s.wrap("set", err)
}

// Delete removes the record under key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkOp(ctx, key); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRecords).Delete([]byte(key))
	})
	return s.wrap("delete", err)
}

// GetDelete returns and removes the record under key in one transaction.
func (s *Store) GetDelete(ctx context.Context, key string) ([]byte, error) {
	if err := checkOp(ctx, key); err != nil {
		return nil, err
	}
	var out []byte
	now := s.now()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v := b.Get([]byte(key))
		value, err := decodeRecord(v, now)
		if err != nil {
			return err // an expired record is left to the sweeper
		}
		out = append([]byte{}, value...)
		return b.Delete([]byte(key))
	})
	if err != nil {
		return nil, s.wrap("get and delete", err)
	}
	return out, nil
}

// decodeRecord returns the value of a stored record, or ErrNotFound if it is
// missing or expired at now.
func decodeRecord(v []byte, now time.Time) ([]byte, error) {
	if v == nil {
		return nil, session.ErrNotFound
	}
	if len(v) < 9 || v[0] != formatVersion {
		return nil, errBadEntry
	}
	if expired(v[1:9], now) {
		return nil, session.ErrNotFound
	}
	return v[9:], nil
}

func expired(deadline []byte, now time.Time) bool {
	return now.UnixNano() >= int64(binary.BigEndian.Uint64(deadline))
}

func checkOp(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !session.ValidKey(key) {
		return fmt.Errorf("invalid key: must be 1 to %d bytes of printable ascii without spaces", session.MaxKeyLen)
	}
	return nil
}

// wrap names the operation and marks failures of the file itself as
// session.ErrUnavailable; the answers a caller acts on pass through.
func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrTaken),
		errors.Is(err, session.ErrTooLarge), errors.Is(err, errBadEntry),
		errors.Is(err, errUploadGone):
		return fmt.Errorf("filestore %s: %w", op, err)
	default:
		return fmt.Errorf("filestore %s: %w: %w", op, session.ErrUnavailable, err)
	}
}

// Usage returns the bytes in use: in the database file (its size less the
// pages bbolt holds free for reuse) and in body files.
func (s *Store) Usage(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var size int64
	if err := s.db.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return 0, s.wrap("usage", err)
	}
	st := s.db.Stats()
	return size - int64(st.FreeAlloc) + s.bodies.bytes.Load(), nil
}

// cleanBodies removes the body files no entry refers to: left by a crash
// between writing a body and committing its entry, or between freeing a
// body and removing its file.
func cleanBodies(db *bbolt.DB, b *bodies) error {
	keep := map[string]bool{}
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if r, err := decodeEntry(v); err == nil {
				keep[r.body], keep[r.ansBody] = true, true
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	_, err = b.clean(keep)
	return err
}
