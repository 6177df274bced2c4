package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
)

// The meta hash of a blob has the fields s (state: p pending, t taken),
// m (meta bytes), g (generation of its chunks), n (chunk count), z (size).
// Chunk keys are built inside the scripts from the blob's base name; they
// share the meta key's hash tag, so on a cluster they are in its slot.

// commitScript makes a fully written blob visible: it checks every chunk is
// still there and gives it the meta's expiry, removes the chunks of a blob
// previously stored under the same key, and writes the meta, pending.
//
// KEYS[1] meta key; ARGV base, generation, chunk count, size, ttl ms, meta.
var commitScript = redis.NewScript(`
local base, gen, n, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5]
for i = 0, n - 1 do
  if redis.call('PEXPIRE', base .. ':c:' .. gen .. ':' .. i, ttl) == 0 then
    return 0
  end
end
local old = redis.call('HMGET', KEYS[1], 'g', 'n')
if old[1] and old[1] ~= gen then
  for i = 0, tonumber(old[2]) - 1 do
    redis.call('DEL', base .. ':c:' .. old[1] .. ':' .. i)
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', 'p', 'm', ARGV[6], 'g', gen, 'n', ARGV[3], 'z', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// takeScript turns a pending blob into a taken one and returns its meta
// hash, or 0 (missing) or 1 (already taken). Being one script, it is the
// single point where concurrent takers are ordered.
//
// The blob lives at least ARGV[2] ms from then (meta and chunks), so its
// body stays readable to the end of the replay.
//
// KEYS[1] meta key; ARGV base, least ttl ms.
var takeScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 'm', 'g', 'n', 'z')
if not v[1] then return 0 end
if v[1] ~= 'p' then return 1 end
redis.call('HSET', KEYS[1], 's', 't')
local least = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < least then
  redis.call('PEXPIRE', KEYS[1], least)
  for i = 0, tonumber(v[4]) - 1 do
    redis.call('PEXPIRE', ARGV[1] .. ':c:' .. v[3] .. ':' .. i, least)
  end
end
return {v[2], v[3], v[4], v[5]}
`)

// restoreScript turns a taken blob back into a pending one; 0 if missing.
//
// KEYS[1] meta key.
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 's', 'p')
return 1
`)

// deleteScript removes a blob's meta and chunks.
//
// KEYS[1] meta key; ARGV base.
var deleteScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'g', 'n')
if v[1] then
  for i = 0, tonumber(v[2]) - 1 do
    redis.call('DEL', ARGV[1] .. ':c:' .. v[1] .. ':' .. i)
  end
end
redis.call('DEL', KEYS[1])
return 1
`)

// blobBase is the common start of a blob's keys: PREFIX:b:{KEY}, with the
// characters that would end or confuse the hash tag escaped.
func (s *Store) blobBase(key string) string {
	return s.prefix + ":b:{" + tagEscaper.Replace(key) + "}"
}

var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func metaKey(base string) string { return base + ":m" }

func chunkKey(base, gen string, i int) string {
	return base + ":c:" + gen + ":" + strconv.Itoa(i)
}

// PutBlob stores meta and the body read from body under key, expiring after
// ttl. The body is written in chunks as it is read, a few pipelined at a
// time; the meta is written last, so the blob is invisible until complete.
// A body over limit bytes gives session.ErrTooLarge and leaves nothing
// behind.
func (s *Store) PutBlob(ctx context.Context, key string, meta []byte, body io.Reader, limit int64, ttl time.Duration) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	ttl, err := checkTTL(ttl)
	if err != nil {
		return 0, err
	}
	if limit < 0 {
		return 0, fmt.Errorf("redisstore: limit %d must not be negative", limit)
	}
	gen, err := newGeneration()
	if err != nil {
		return 0, err
	}
	base := s.blobBase(key)

	// Read at most one byte past the limit: enough to know it is exceeded.
	if limit < math.MaxInt64 {
		body = io.LimitReader(body, limit+1)
	}
	var (
		bufs   [chunksPerBatch][]byte
		size   int64
		chunks int
	)
	for done := false; !done; {
		pipe := s.rdb.Pipeline()
		for i := 0; i < chunksPerBatch && !done; i++ {
			if bufs[i] == nil {
				bufs[i] = make([]byte, s.chunkSize)
			}
			n, rerr := io.ReadFull(body, bufs[i])
			switch {
			case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
				done = true
			case rerr != nil:
				s.removeChunks(ctx, base, gen, chunks)
				return 0, fmt.Errorf("redisstore: put blob: read body: %w", rerr)
			}
			if n == 0 {
				continue
			}
			size += int64(n)
			if size > limit {
				s.removeChunks(ctx, base, gen, chunks)
				return 0, fmt.Errorf("redisstore: put blob: %w", session.ErrTooLarge)
			}
			// Until the commit gives them the blob's ttl, chunks live long
			// enough for a slow body to finish arriving.
			pipe.Set(ctx, chunkKey(base, gen, chunks), bufs[i][:n], ttl+session.UploadGrace)
			chunks++
		}
		if pipe.Len() == 0 {
			continue
		}
		if _, err := pipe.Exec(ctx); err != nil {
			s.removeChunks(ctx, base, gen, chunks)
			return 0, s.fail("put blob", err)
		}
	}

	ok, err := commitScript.Run(ctx, s.rdb, []string{metaKey(base)},
		base, gen, chunks, size, ttl.Milliseconds(), meta).Int()
	if err != nil {
		s.removeChunks(ctx, base, gen, chunks)
		return 0, s.fail("put blob", err)
	}
	if ok != 1 {
		// A chunk expired before the meta was written: the ttl is shorter
		// than the time the body took to arrive.
		s.removeChunks(ctx, base, gen, chunks)
		return 0, fmt.Errorf("redisstore: put blob: body chunks expired while the body was written (ttl %s): %w", ttl, session.ErrNotFound)
	}
	return size, nil
}

// removeChunks deletes the first n chunks of a blob being written, after a
// failure. It tries even when ctx is cancelled, briefly; what it cannot
// remove expires with its ttl.
func (s *Store) removeChunks(ctx context.Context, base, gen string, n int) {
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	const perCall = 128
	keys := make([]string, 0, min(n, perCall))
	for i := 0; i < n; i++ {
		keys = append(keys, chunkKey(base, gen, i))
		if len(keys) == perCall || i == n-1 {
			// Same hash slot, so one DEL is fine on a cluster.
			if s.rdb.Del(ctx, keys...).Err() != nil {
				return
			}
			keys = keys[:0]
		}
	}
}

// TakeBlob marks the blob under key as taken, in one script, and returns its
// meta and a reader of its body. Of concurrent calls, across every process
// sharing the Redis, exactly one succeeds; the others get session.ErrTaken
// or session.ErrNotFound. The reader fetches one chunk at a time using ctx,
// so ctx must stay live until the body has been read.
func (s *Store) TakeBlob(ctx context.Context, key string) ([]byte, io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, nil, err
	}
	base := s.blobBase(key)
	res, err := takeScript.Run(ctx, s.rdb, []string{metaKey(base)}, base, session.TakenTTL.Milliseconds()).Result()
	if err != nil {
		return nil, nil, s.fail("take blob", err)
	}
	switch v := res.(type) {
	case int64:
		if v == 1 {
			return nil, nil, fmt.Errorf("redisstore: take blob: %w", session.ErrTaken)
		}
		return nil, nil, fmt.Errorf("redisstore: take blob: %w", session.ErrNotFound)
	case []any:
		if len(v) != 4 {
			break
		}
		meta, _ := v[0].(string)
		gen, _ := v[1].(string)
		n, err1 := strconv.Atoi(fmt.Sprint(v[2]))
		size, err2 := strconv.ParseInt(fmt.Sprint(v[3]), 10, 64)
		if gen == "" || err1 != nil || err2 != nil {
			break
		}
		r := &chunkReader{ctx: ctx, s: s, base: base, gen: gen, chunks: n, size: size}
		return []byte(meta), r, nil
	}
	return nil, nil, fmt.Errorf("redisstore: take blob: unexpected script reply %T", res)
}

// RestoreBlob returns a taken blob to pending, so one TakeBlob may succeed
// again. A missing blob gives session.ErrNotFound.
func (s *Store) RestoreBlob(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ok, err := restoreScript.Run(ctx, s.rdb, []string{metaKey(s.blobBase(key))}).Int()
	if err != nil {
		return s.fail("restore blob", err)
	}
	if ok != 1 {
		return fmt.Errorf("redisstore: restore blob: %w", session.ErrNotFound)
	}
	return nil
}

// DeleteBlob removes a blob's meta and every chunk, taken or not. A missing
// blob is not an error.
func (s *Store) DeleteBlob(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	base := s.blobBase(key)
	if err := deleteScript.Run(ctx, s.rdb, []string{metaKey(base)}, base).Err(); err != nil {
		return s.fail("delete blob", err)
	}
	return nil
}

// newGeneration returns a random name for one PutBlob's chunks.
func newGeneration() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("redisstore: random generation: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// chunkReader streams a taken blob's body, one GET per chunk.
type chunkReader struct {
	ctx    context.Context
	s      *Store
	base   string
	gen    string
	chunks int   // how many chunks the blob has
	size   int64 // how many bytes they hold together
	next   int   // the next chunk to fetch
	read   int64 // bytes fetched so far
	cur    string
	off    int
	closed bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("redisstore: read of a closed blob body")
	}
	for r.off == len(r.cur) {
		if r.next == r.chunks {
			if r.read != r.size {
				return 0, fmt.Errorf("redisstore: blob body is %d bytes, its meta says %d: %w", r.read, r.size, io.ErrUnexpectedEOF)
			}
			return 0, io.EOF
		}
		v, err := r.s.rdb.Get(r.ctx, chunkKey(r.base, r.gen, r.next)).Result()
		if err != nil {
			// A missing chunk maps to ErrNotFound: it expired or the blob
			// was deleted while being read.
			return 0, r.s.fail("read blob chunk "+strconv.Itoa(r.next), err)
		}
		r.cur, r.off = v, 0
		r.next++
		r.read += int64(len(v))
	}
	n := copy(p, r.cur[r.off:])
	r.off += n
	return n, nil
}

// Close ends reading; the blob stays taken until DeleteBlob or RestoreBlob.
func (r *chunkReader) Close() error {
	r.closed = true
	r.cur = ""
	return nil
}
