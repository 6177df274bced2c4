package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// setNXScript stores ARGV[1] under KEYS[1] for ARGV[2] ms unless the key
// exists, and returns {1, value} if it stored it or {0, current} if not.
var setNXScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, ARGV[1]}
end
return {0, redis.call('GET', KEYS[1])}
`)

// deleteIfScript removes KEYS[1] if it holds ARGV[1]; 1 if it did.
var deleteIfScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// SetNX stores value under key for ttl unless the key exists (SET NX PX in
// a script that also returns the current value).
func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	ttl, err := checkTTL(ttl)
	if err != nil {
		return nil, false, err
	}
	res, err := setNXScript.Run(ctx, s.rdb, []string{s.recordKey(key)}, value, ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, false, s.fail("setnx", err)
	}
	if len(res) != 2 {
		return nil, false, errors.New("redisstore: setnx: unexpected reply")
	}
	flag, _ := res[0].(int64)
	cur, ok := res[1].(string)
	if !ok {
		// The key expired between SET and GET: nothing holds it now, and
		// the caller may simply try again.
		return nil, false, fmt.Errorf("redisstore: setnx: key vanished: %w", errRetry)
	}
	return []byte(cur), flag == 1, nil
}

// errRetry marks a race with expiry that the caller resolves by retrying.
var errRetry = errors.New("try again")

// DeleteIf removes the record under key if it holds value (compare and
// delete in one script).
func (s *Store) DeleteIf(ctx context.Context, key string, value []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	n, err := deleteIfScript.Run(ctx, s.rdb, []string{s.recordKey(key)}, value).Int64()
	if err != nil {
		return false, s.fail("delete if", err)
	}
	return n == 1, nil
}
