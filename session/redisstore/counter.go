package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
)

var _ session.Counters = (*Store)(nil)

// addCounter is AddCounter as one script: a counter is a hash of slot ->
// value, so the whole step is atomic on one key (and one cluster slot).
var addCounter = redis.NewScript(`
local slot, oldest, delta, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local all = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #all, 2 do
  if tonumber(all[i]) < oldest then
    redis.call('HDEL', KEYS[1], all[i])
  else
    sum = sum + tonumber(all[i + 1])
  end
end
if delta > 0 and limit >= 0 and sum + delta > limit then
  return {sum, 0}
end
if delta ~= 0 and slot >= oldest then
  redis.call('HINCRBY', KEYS[1], ARGV[1], delta)
  sum = sum + delta
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return {sum, 1}
`)

// AddCounter implements session.Counters with a Lua script.
func (s *Store) AddCounter(ctx context.Context, key string, slot, oldest, delta, limit int64, ttl time.Duration) (int64, bool, error) {
	if err := checkKey(key); err != nil {
		return 0, false, err
	}
	ttl, err := checkTTL(ttl)
	if err != nil {
		return 0, false, err
	}
	res, err := addCounter.Run(ctx, s.rdb, []string{s.counterKey(key)}, slot, oldest, delta, limit, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, false, s.fail("add counter", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("redisstore: add counter: unexpected reply %v", res)
	}
	return res[0], res[1] == 1, nil
}

// DeleteCounter implements session.Counters.
func (s *Store) DeleteCounter(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, s.counterKey(key)).Err(); err != nil {
		return s.fail("delete counter", err)
	}
	return nil
}

func (s *Store) counterKey(key string) string {
	return s.prefix + ":c:" + key
}
