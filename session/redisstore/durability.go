package redisstore

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
)

// DefaultWaitTimeout is how long a transition waits for its replicas when
// the store URL asks for min_replicas and gives no wait_timeout.
const DefaultWaitTimeout = time.Second

// durability is how many replicas must hold a replay transition before it
// counts as done (the store URL's min_replicas and wait_timeout).
type durability struct {
	replicas int
	timeout  time.Duration
}

// parseDurability reads and removes min_replicas and wait_timeout from q,
// which go-redis does not know.
func parseDurability(q url.Values) (durability, error) {
	d := durability{timeout: DefaultWaitTimeout}
	if q.Has("min_replicas") {
		n, err := strconv.Atoi(q.Get("min_replicas"))
		if err != nil || n < 0 || n > 100 {
			return d, fmt.Errorf("option min_replicas=%q: must be a number of replicas from 0 to 100", q.Get("min_replicas"))
		}
		d.replicas = n
		q.Del("min_replicas")
	}
	if q.Has("wait_timeout") {
		t, err := time.ParseDuration(q.Get("wait_timeout"))
		if err != nil || t < time.Millisecond || t > time.Minute {
			return d, fmt.Errorf("option wait_timeout=%q: must be a duration from 1ms to 1m, such as 500ms", q.Get("wait_timeout"))
		}
		if d.replicas == 0 {
			return d, fmt.Errorf("option wait_timeout needs min_replicas: it is how long a write waits for them")
		}
		d.timeout = t
		q.Del("wait_timeout")
	}
	return d, nil
}

// runDurable runs script on the node that owns keys[0] and, when the store
// URL asks for replicas, WAITs for them on the same connection (WAIT
// counts the acknowledgements of the writes of its own connection). Fewer
// acknowledgements than min_replicas is session.ErrUnavailable: the script
// ran on the primary, but the write is not yet safe from its loss.
func (s *Store) runDurable(ctx context.Context, op string, script *redis.Script, keys []string, args ...any) (any, error) {
	if s.wait.replicas == 0 {
		res, err := script.Run(ctx, s.rdb, keys, args...).Result()
		if err != nil {
			return nil, s.fail(op, err)
		}
		return res, nil
	}
	var node redis.Cmdable = s.rdb
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		m, err := c.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, s.fail(op, err)
		}
		node = m
	}
	for attempt := 0; ; attempt++ {
		pipe := node.Pipeline()
		ev := pipe.EvalSha(ctx, script.Hash(), keys, args...)
		wait := redis.NewIntCmd(ctx, "wait", s.wait.replicas, s.wait.timeout.Milliseconds())
		_ = pipe.Process(ctx, wait)
		_, _ = pipe.Exec(ctx)
		if err := ev.Err(); err != nil {
			if attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				// Not run: load it and try again.
				if err := script.Load(ctx, node).Err(); err != nil {
					return nil, s.fail(op, err)
				}
				continue
			}
			return nil, s.fail(op, err)
		}
		if err := wait.Err(); err != nil {
			return nil, fmt.Errorf("redisstore: %s: waiting for replicas: %w: %w", op, session.ErrUnavailable, err)
		}
		if got := int(wait.Val()); got < s.wait.replicas {
			return nil, fmt.Errorf("redisstore: %s: %d of %d replicas (min_replicas) acknowledged within %s (wait_timeout): %w",
				op, got, s.wait.replicas, s.wait.timeout, session.ErrUnavailable)
		}
		return ev.Val(), nil
	}
}
