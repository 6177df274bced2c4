package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
)

// An entry (a stash with its replay state) is one hash, PREFIX:e:{KEY}:s,
// with the fields m (sealed meta), s (plaintext state), a (sealed answer
// meta), b and bn (generation and chunk count of the stash body), an and
// ann (the same for the answer body). Each body is a hash of its own,
// PREFIX:e:{KEY}:b:GEN or PREFIX:e:{KEY}:a:GEN, from chunk index to chunk,
// so freeing a body is one DEL. All keys of an entry share the hash tag
// {KEY}: one slot on a cluster, and every script declares them in KEYS.

// putEntryScript makes a fully written entry visible, replacing the entry
// (and the bodies) that Go read before, if still the same.
//
// KEYS entry, new body, old body, old answer body.
// ARGV meta, state, gen, chunks, ttl ms, old gen, old answer gen.
// Returns 1 done, 0 the body expired while it was written, 2 conflict.
var putEntryScript = redis.NewScript(`
if tonumber(ARGV[4]) > 0 and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local cur = redis.call('HMGET', KEYS[1], 'b', 'an')
if (cur[1] or '') ~= ARGV[6] or (cur[2] or '') ~= ARGV[7] then return 2 end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'm', ARGV[1], 's', ARGV[2], 'b', ARGV[3], 'bn', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
return 1
`)

// updateScript is one transition: if the entry's state (and body names)
// are those Go decided on, it sets the next state, frees bodies, keeps a new
// answer, and extends the entry's life, all at once.
//
// KEYS entry, body, answer body, new answer body.
// ARGV prev state, next state, free mask (1 stash, 2 answer), keep ms,
// expected body gen, expected answer gen, new answer meta (” none), new
// answer gen, new answer chunks.
// Returns 1 done, 0 missing, 2 conflict, 3 the new answer body expired.
var updateScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 's', 'b', 'an')
if not cur[1] then return 0 end
if cur[1] ~= ARGV[1] or (cur[2] or '') ~= ARGV[5] or (cur[3] or '') ~= ARGV[6] then return 2 end
local answer = ARGV[8] ~= ''
if answer and tonumber(ARGV[9]) > 0 and redis.call('EXISTS', KEYS[4]) == 0 then return 3 end
redis.call('HSET', KEYS[1], 's', ARGV[2])
local free = tonumber(ARGV[3])
if free % 2 == 1 then
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[1], 'b', 'bn')
end
if answer or math.floor(free / 2) % 2 == 1 then
  redis.call('DEL', KEYS[3])
  redis.call('HDEL', KEYS[1], 'an', 'ann')
end
if answer then
  redis.call('HSET', KEYS[1], 'a', ARGV[7], 'an', ARGV[8], 'ann', ARGV[9])
end
local ttl = redis.call('PTTL', KEYS[1])
local keep = tonumber(ARGV[4])
if keep > ttl then
  redis.call('PEXPIRE', KEYS[1], keep)
  ttl = keep
end
for i = 2, 4 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
`)

// maxSwaps bounds how often UpdateEntry decides again after losing a race;
// each loss means another caller made progress.
const maxSwaps = 64

func (s *Store) entryBase(key string) string {
	return s.prefix + ":e:{" + tagEscaper.Replace(key) + "}"
}

func entryKey(base string) string { return base + ":s" }

// bodyKey names a body hash; an empty gen gives a key that never exists
// (in the same slot), so scripts always get the same KEYS.
func bodyKey(base, kind, gen string) string {
	if gen == "" {
		gen = "-"
	}
	return base + ":" + kind + ":" + gen
}

// entryState is what Go reads of an entry before a transition.
type entryState struct {
	e                     session.Entry
	body, answer          string // generations
	bodyChunks, ansChunks int
}

func (s *Store) readEntry(ctx context.Context, base string) (entryState, error) {
	v, err := s.rdb.HMGet(ctx, entryKey(base), "m", "s", "a", "b", "an", "bn", "ann").Result()
	if err != nil {
		return entryState{}, err
	}
	str := func(i int) string { x, _ := v[i].(string); return x }
	if v[0] == nil || v[1] == nil {
		return entryState{}, session.ErrNotFound
	}
	es := entryState{
		e:      session.Entry{Meta: []byte(str(0)), State: []byte(str(1))},
		body:   str(3),
		answer: str(4),
	}
	if v[2] != nil {
		es.e.Answer = []byte(str(2))
	}
	es.bodyChunks, _ = strconv.Atoi(str(5))
	es.ansChunks, _ = strconv.Atoi(str(6))
	return es, nil
}

// PutEntry writes the body as chunks into a new body hash (pipelined a few
// at a time), then makes the entry visible in one script.
func (s *Store) PutEntry(ctx context.Context, key string, meta, state []byte, body io.Reader, limit int64, ttl time.Duration) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	ttl, err := checkTTL(ttl)
	if err != nil {
		return 0, err
	}
	base := s.entryBase(key)
	gen, size, chunks, err := s.writeBody(ctx, base, "b", body, limit, ttl+session.UploadGrace)
	if err != nil {
		return 0, err
	}
	nk := bodyKey(base, "b", gen)
	for attempt := 0; attempt < maxSwaps; attempt++ {
		old, err := s.readEntry(ctx, base)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			s.rdb.Del(context.WithoutCancel(ctx), nk)
			return 0, s.fail("put entry", err)
		}
		res, err := s.runDurable(ctx, "put entry", putEntryScript,
			[]string{entryKey(base), nk, bodyKey(base, "b", old.body), bodyKey(base, "a", old.answer)},
			meta, state, gen, chunks, ttl.Milliseconds(), old.body, old.answer)
		if err != nil {
			if !errors.Is(err, session.ErrUnavailable) {
				s.rdb.Del(context.WithoutCancel(ctx), nk)
			}
			return 0, err
		}
		switch res {
		case int64(1):
			return size, nil
		case int64(0):
			return 0, fmt.Errorf("redisstore: put entry: body expired while it was written (ttl %s): %w", ttl, session.ErrNotFound)
		}
	}
	s.rdb.Del(context.WithoutCancel(ctx), nk)
	return 0, fmt.Errorf("redisstore: put entry: %w: the entry kept changing", session.ErrUnavailable)
}

// writeBody streams body into a new body hash of kind ("b" or "a") and
// returns its generation, length and chunk count. Over limit is
// session.ErrTooLarge; nothing is left on failure.
func (s *Store) writeBody(ctx context.Context, base, kind string, body io.Reader, limit int64, ttl time.Duration) (gen string, size int64, chunks int, err error) {
	if limit < 0 {
		return "", 0, 0, fmt.Errorf("redisstore: limit %d must not be negative", limit)
	}
	if gen, err = newGeneration(); err != nil {
		return "", 0, 0, err
	}
	bk := bodyKey(base, kind, gen)
	if limit < math.MaxInt64 {
		body = io.LimitReader(body, limit+1)
	}
	defer func() {
		if err != nil && chunks > 0 {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			s.rdb.Del(ctx, bk)
		}
	}()
	var bufs [chunksPerBatch][]byte
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
				return "", 0, chunks, fmt.Errorf("redisstore: write body: read body: %w", rerr)
			}
			if n == 0 {
				continue
			}
			size += int64(n)
			if size > limit {
				return "", 0, chunks, fmt.Errorf("redisstore: write body: %w", session.ErrTooLarge)
			}
			pipe.HSet(ctx, bk, strconv.Itoa(chunks), bufs[i][:n])
			chunks++
		}
		if pipe.Len() == 0 {
			continue
		}
		// Until the commit gives it the entry's ttl, the body lives long
		// enough for a slow upload to finish.
		pipe.PExpire(ctx, bk, ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			return "", 0, chunks, s.fail("write body", err)
		}
	}
	return gen, size, chunks, nil
}

// ReadEntry returns the entry under key.
func (s *Store) ReadEntry(ctx context.Context, key string) (session.Entry, error) {
	if err := checkKey(key); err != nil {
		return session.Entry{}, err
	}
	es, err := s.readEntry(ctx, s.entryBase(key))
	if err != nil {
		return session.Entry{}, s.fail("read entry", err)
	}
	return es.e, nil
}

// UpdateEntry reads the entry, lets decide choose the next state, and
// swaps it in with one script that applies it only if the entry is still
// as read (else it reads and decides again).
func (s *Store) UpdateEntry(ctx context.Context, key string, decide session.Decide) (session.Entry, error) {
	if err := checkKey(key); err != nil {
		return session.Entry{}, err
	}
	return s.swap(ctx, "update entry", s.entryBase(key), decide, nil)
}

// newAnswer is a written answer body that a swap attaches to its entry.
type newAnswer struct {
	meta   []byte
	gen    string
	chunks int
}

func (s *Store) swap(ctx context.Context, op, base string, decide session.Decide, ans *newAnswer) (session.Entry, error) {
	for attempt := 0; attempt < maxSwaps; attempt++ {
		es, err := s.readEntry(ctx, base)
		if err != nil {
			return session.Entry{}, s.fail(op, err)
		}
		next, ch, err := decide(es.e)
		if err != nil {
			return es.e, err
		}
		var meta []byte
		gen, chunks := "", 0
		if ans != nil {
			meta, gen, chunks = ans.meta, ans.gen, ans.chunks
		}
		res, err := s.runDurable(ctx, op, updateScript,
			[]string{entryKey(base), bodyKey(base, "b", es.body), bodyKey(base, "a", es.answer), bodyKey(base, "a", gen)},
			es.e.State, next, int(ch.Free), ch.Keep.Milliseconds(), es.body, es.answer, meta, gen, chunks)
		if err != nil {
			return es.e, err
		}
		switch res {
		case int64(1):
			return es.e, nil
		case int64(0):
			return session.Entry{}, fmt.Errorf("redisstore: %s: %w", op, session.ErrNotFound)
		case int64(3):
			return es.e, fmt.Errorf("redisstore: %s: answer body expired before it was kept: %w", op, session.ErrNotFound)
		}
		// 2: changed since it was read; decide again.
	}
	return session.Entry{}, fmt.Errorf("redisstore: %s: %w: the entry kept changing", op, session.ErrUnavailable)
}

// PutAnswer writes the answer body into its own hash, then attaches it to
// the entry in the same script as decide's transition.
func (s *Store) PutAnswer(ctx context.Context, key string, answer []byte, body io.Reader, limit int64, decide session.Decide) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	base := s.entryBase(key)
	gen, size, chunks, err := s.writeBody(ctx, base, "a", body, limit, session.TakenTTL+session.UploadGrace)
	if err != nil {
		return 0, err
	}
	if _, err := s.swap(ctx, "put answer", base, decide, &newAnswer{meta: answer, gen: gen, chunks: chunks}); err != nil {
		if !errors.Is(err, session.ErrUnavailable) {
			s.rdb.Del(context.WithoutCancel(ctx), bodyKey(base, "a", gen))
		}
		return 0, err
	}
	return size, nil
}

// OpenBody returns a reader that fetches the body one chunk at a time (one
// HGET each), using ctx, which must stay live until the body is read.
func (s *Store) OpenBody(ctx context.Context, key string, which session.Bodies) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	base := s.entryBase(key)
	es, err := s.readEntry(ctx, base)
	if err != nil {
		return nil, s.fail("open body", err)
	}
	var bk string
	var n int
	switch which {
	case session.BodyStash:
		bk, n = es.body, es.bodyChunks
		bk = bodyKey(base, "b", bk)
		if es.body == "" {
			return nil, fmt.Errorf("redisstore: open body: freed: %w", session.ErrNotFound)
		}
	case session.BodyAnswer:
		if es.answer == "" {
			return nil, fmt.Errorf("redisstore: open body: no answer: %w", session.ErrNotFound)
		}
		bk, n = bodyKey(base, "a", es.answer), es.ansChunks
	default:
		return nil, fmt.Errorf("redisstore: open body: unknown body %d", which)
	}
	return &hashReader{ctx: ctx, s: s, key: bk, chunks: n}, nil
}

// hashReader streams a body hash, one chunk per HGET.
type hashReader struct {
	ctx    context.Context
	s      *Store
	key    string
	chunks int
	next   int
	cur    []byte
	off    int
	closed bool
}

func (r *hashReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("redisstore: read of a closed body")
	}
	for r.off == len(r.cur) {
		if r.next == r.chunks {
			return 0, io.EOF
		}
		v, err := r.s.rdb.HGet(r.ctx, r.key, strconv.Itoa(r.next)).Bytes()
		if err != nil {
			// A missing chunk: the body expired or was freed while read.
			return 0, r.s.fail("read body chunk "+strconv.Itoa(r.next), err)
		}
		r.cur, r.off = v, 0
		r.next++
	}
	n := copy(p, r.cur[r.off:])
	r.off += n
	return n, nil
}

// Close ends reading.
func (r *hashReader) Close() error {
	r.closed = true
	r.cur = nil
	return nil
}
