package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
)

// DefaultChunkSize is the size of the pieces a blob body is stored in.
const DefaultChunkSize = 64 << 10

// chunksPerBatch is how many chunk writes PutBlob pipelines at once: few
// round trips without holding much of the body in memory.
const chunksPerBatch = 4

// Store is a session.Backend on Redis. It is safe for concurrent use and
// recovers by itself when Redis comes back after an outage.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	chunkSize int
	wait      durability // replicas each replay transition waits for
	watch     *watch     // session.Watcher over pub/sub, started on first use
}

var _ session.Backend = (*Store)(nil)

// Option changes how Open sets up a Store.
type Option func(*options)

type options struct {
	prefix    string
	chunkSize int
	tls       *tls.Config
}

// WithKeyPrefix sets the first part of every key (default "postern"), so
// several gateways, or tests, can share one Redis without seeing each other's
// keys. It must be printable ASCII without spaces or braces.
func WithKeyPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// WithChunkSize sets the size of the pieces a blob body is stored and read
// in (default DefaultChunkSize). Larger chunks mean fewer round trips and
// more memory per blob in flight.
func WithChunkSize(n int) Option {
	return func(o *options) { o.chunkSize = n }
}

// WithTLSConfig sets the TLS configuration for rediss URLs, for a private
// certificate authority or client certificates. The URL must use a rediss
// scheme. If ServerName is empty it is taken from the URL.
func WithTLSConfig(c *tls.Config) Option {
	return func(o *options) { o.tls = c }
}

// Open connects to the Redis named by rawURL (see the package documentation
// for its forms) and checks that it answers. If it does not, Open returns an
// error wrapping session.ErrUnavailable.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	o := options{prefix: "postern", chunkSize: DefaultChunkSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.prefix == "" || strings.ContainsAny(o.prefix, "{}") || !printable(o.prefix) {
		return nil, errors.New("redisstore: key prefix must be non-empty printable ascii without spaces or braces")
	}
	if o.chunkSize < 1 || o.chunkSize > 64<<20 {
		return nil, fmt.Errorf("redisstore: chunk size %d must be from 1 byte to 64 MiB", o.chunkSize)
	}
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: store url: %w", err)
	}

	var rdb redis.UniversalClient
	// A WAIT blocks its connection for up to wait_timeout: reads must wait
	// longer than that.
	least := cfg.wait.timeout + time.Second
	lengthen := func(rt *time.Duration) {
		if cfg.wait.replicas > 0 && *rt >= 0 && *rt < least {
			*rt = least
		}
	}
	switch cfg.kind {
	case kindSingle:
		if err := applyTLS(&cfg.single.TLSConfig, o.tls); err != nil {
			return nil, err
		}
		lengthen(&cfg.single.ReadTimeout)
		rdb = redis.NewClient(cfg.single)
	case kindSentinel:
		if err := applyTLS(&cfg.sentinel.TLSConfig, o.tls); err != nil {
			return nil, err
		}
		lengthen(&cfg.sentinel.ReadTimeout)
		rdb = redis.NewFailoverClient(cfg.sentinel)
	case kindCluster:
		if err := applyTLS(&cfg.cluster.TLSConfig, o.tls); err != nil {
			return nil, err
		}
		lengthen(&cfg.cluster.ReadTimeout)
		rdb = redis.NewClusterClient(cfg.cluster)
	}
	s := &Store{rdb: rdb, prefix: o.prefix, chunkSize: o.chunkSize, wait: cfg.wait}
	s.watch = newWatch(s)
	if err := s.Ping(ctx); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return s, nil
}

// applyTLS puts the caller's TLS configuration in place of the one the URL
// produced, keeping the URL's server name when the caller gave none.
func applyTLS(dst **tls.Config, given *tls.Config) error {
	if given == nil {
		return nil
	}
	if *dst == nil {
		return errors.New("redisstore: WithTLSConfig needs a rediss url")
	}
	c := given.Clone()
	if c.ServerName == "" {
		c.ServerName = (*dst).ServerName
	}
	*dst = c
	return nil
}

// Ping reports whether Redis answers. On a cluster every master must answer.
func (s *Store) Ping(ctx context.Context) error {
	var err error
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			return n.Ping(ctx).Err()
		})
	} else {
		err = s.rdb.Ping(ctx).Err()
	}
	if err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Close closes the connections to Redis. The Store is unusable afterwards.
func (s *Store) Close() error {
	s.watch.close()
	return s.rdb.Close()
}

// Get returns the record stored under key, or session.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	v, err := s.rdb.Get(ctx, s.recordKey(key)).Bytes()
	if err != nil {
		return nil, s.fail("get", err)
	}
	return v, nil
}

// Set stores a record under key, replacing any, expiring after ttl.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ttl, err := checkTTL(ttl)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.recordKey(key), value, ttl).Err(); err != nil {
		return s.fail("set", err)
	}
	return nil
}

// Delete removes a record; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, s.recordKey(key)).Err(); err != nil {
		return s.fail("delete", err)
	}
	return nil
}

// GetDelete returns and removes the record under key in one step (GETDEL),
// so of concurrent callers only one gets it.
func (s *Store) GetDelete(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	v, err := s.rdb.GetDel(ctx, s.recordKey(key)).Bytes()
	if err != nil {
		return nil, s.fail("getdelete", err)
	}
	return v, nil
}

func (s *Store) recordKey(key string) string {
	return s.prefix + ":r:" + key
}

// fail turns a go-redis error into the Backend's vocabulary: a missing key
// is session.ErrNotFound; anything that means Redis cannot serve right now
// wraps session.ErrUnavailable (and keeps the cause).
func (s *Store) fail(op string, err error) error {
	switch {
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("redisstore: %s: %w", op, session.ErrNotFound)
	case errors.Is(err, session.ErrNotFound):
		return fmt.Errorf("redisstore: %s: %w", op, err)
	case unavailable(err):
		return fmt.Errorf("redisstore: %s: %w: %w", op, session.ErrUnavailable, err)
	default:
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
}

// unavailable reports whether err means the store cannot serve: no
// connection, a timeout, a closed client, or a server that is loading, down,
// read-only, out of memory, busy or refusing our credentials. Other error
// replies (a wrong type, a script error) are bugs, not outages.
func unavailable(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true
	}
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask ||
		redis.IsLoadingError(err) || redis.IsReadOnlyError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.IsNoReplicasError(err) ||
		redis.IsAuthError(err) || redis.IsPermissionError(err) ||
		redis.HasErrorPrefix(err, "BUSY")
}

// checkKey enforces the Backend's key rule: 1 to 200 bytes of printable
// ASCII without spaces. The key itself is not put in the error: keys are
// ids a client could replay.
func checkKey(key string) error {
	if len(key) == 0 || len(key) > 200 || !printable(key) {
		return errors.New("redisstore: key must be 1 to 200 bytes of printable ascii without spaces")
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// checkTTL requires a positive ttl (every key expires) and rounds it up to
// whole milliseconds, Redis's resolution.
func checkTTL(ttl time.Duration) (time.Duration, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("redisstore: ttl %s must be positive", ttl)
	}
	if r := ttl % time.Millisecond; r != 0 {
		ttl += time.Millisecond - r
	}
	return ttl, nil
}

// Usage returns the memory Redis reports in use (used_memory; summed over
// the masters of a cluster).
func (s *Store) Usage(ctx context.Context) (int64, error) {
	var total int64
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.InfoMap(ctx, "memory").Result()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
		if err != nil {
			return fmt.Errorf("used_memory: %w", err)
		}
		atomic.AddInt64(&total, n)
		return nil
	}
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, read)
	case *redis.Client:
		err = read(ctx, c)
	default:
		return 0, errors.New("usage: unsupported client")
	}
	if err != nil {
		return 0, s.fail("usage", err)
	}
	return total, nil
}
