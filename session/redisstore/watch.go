package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
)

// StaleBound is the longest a gateway uses a session record it keeps in
// memory: a change it did not hear of (its pub/sub connection was down)
// takes effect within it.
const StaleBound = time.Second

var _ session.Watcher = (*Store)(nil)

// watch tells every process on the same Redis (and key prefix) of changed
// records over pub/sub, and waits for each to say it heard:
//
//	PUBLISH <prefix>:changed "<sender> <seq> <key>"
//	PUBLISH <prefix>:heard:<sender> "<seq>"   (by each receiver, after forgetting key)
//
// PUBLISH answers how many subscribers received the message, so the sender
// knows how many acknowledgements to wait for: when Changed returns, every
// replica has forgotten the record (or StaleBound has passed, after which
// none uses it anyway). On Redis Cluster that count is of one node's
// subscribers only, so there the bound is what holds for the others.
type watch struct {
	s  *Store
	id string // this process, in the messages

	startMu sync.Mutex // guards ps, done and stopped
	ps      *redis.PubSub
	done    chan struct{} // closed when loop ends
	quit    chan struct{} // closed to end loop
	stopped bool

	mu     sync.Mutex
	fns    map[int]func(string)
	nextFn int
	seq    uint64
	waits  map[uint64]*heardWait
	closed bool

	slowHeard time.Duration // tests: how late this process handles a change
}

type heardWait struct {
	want, got int // want is -1 until PUBLISH answered
	done      chan struct{}
}

func newWatch(s *Store) *watch {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &watch{s: s, id: hex.EncodeToString(b[:]), fns: map[int]func(string){}, waits: map[uint64]*heardWait{}}
}

func (w *watch) changedChannel() string { return w.s.prefix + ":changed" }
func (w *watch) heardChannel(id string) string {
	return w.s.prefix + ":heard:" + id
}

// start subscribes, unless it already did, and waits until Redis
// confirmed both subscriptions, so no change published after it returns is
// missed. A failure is retried at the next call.
func (w *watch) start() error {
	w.startMu.Lock()
	defer w.startMu.Unlock()
	if w.stopped {
		return fmt.Errorf("redisstore: closed: %w", session.ErrUnavailable)
	}
	if w.ps != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps := w.s.rdb.Subscribe(ctx, w.changedChannel(), w.heardChannel(w.id))
	for range 2 {
		msg, err := ps.Receive(ctx)
		if err != nil {
			_ = ps.Close()
			return fmt.Errorf("redisstore: subscribe: %w: %w", session.ErrUnavailable, err)
		}
		if _, ok := msg.(*redis.Subscription); !ok {
			_ = ps.Close()
			return fmt.Errorf("redisstore: subscribe: unexpected %T", msg)
		}
	}
	w.ps, w.done, w.quit = ps, make(chan struct{}), make(chan struct{})
	go w.loop(ps, w.quit)
	return nil
}

// loop handles messages until the subscription is closed. When the
// connection breaks, every watcher is told to forget everything (key ""):
// changes made while it was down would go unheard. go-redis reconnects and
// subscribes again on the next Receive.
func (w *watch) loop(ps *redis.PubSub, quit <-chan struct{}) {
	defer close(w.done)
	for {
		msg, err := ps.Receive(context.Background())
		if err != nil {
			select {
			case <-quit:
				return
			default:
			}
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			w.notify("")
			select {
			case <-quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue // subscription confirmations, pongs
		}
		if m.Channel == w.changedChannel() {
			w.heard(m.Payload)
			continue
		}
		seq, err := strconv.ParseUint(m.Payload, 10, 64)
		if err != nil {
			continue
		}
		w.mu.Lock()
		if hw := w.waits[seq]; hw != nil {
			hw.got++
			if hw.want >= 0 && hw.got >= hw.want {
				close(hw.done)
				delete(w.waits, seq)
			}
		}
		w.mu.Unlock()
	}
}

// notify calls every watcher with key.
func (w *watch) notify(key string) {
	w.mu.Lock()
	fns := make([]func(string), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn(key)
	}
}

// heard forgets the changed key in every watcher, then acknowledges.
func (w *watch) heard(payload string) {
	sender, rest, ok := strings.Cut(payload, " ")
	if !ok {
		return
	}
	seq, key, ok := strings.Cut(rest, " ")
	if !ok {
		return
	}
	if key == "" {
		return
	}
	if w.slowHeard > 0 {
		time.Sleep(w.slowHeard)
	}
	w.notify(key)
	ctx, cancel := context.WithTimeout(context.Background(), StaleBound)
	defer cancel()
	_ = w.s.rdb.Publish(ctx, w.heardChannel(sender), seq).Err()
}

// Watch calls fn with the key of every record any process on this Redis
// names in Changed, until stop is called.
func (s *Store) Watch(fn func(key string)) (stop func(), err error) {
	w := s.watch
	if err := w.start(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	id := w.nextFn
	w.nextFn++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.fns, id)
	}, nil
}

// Changed tells every process on this Redis that key changed and waits
// until each has heard, at most StaleBound.
func (s *Store) Changed(ctx context.Context, key string) error {
	w := s.watch
	if err := w.start(); err != nil {
		// Acknowledgements cannot be heard: tell the others anyway, and
		// wait until none of them uses the record any more.
		n, perr := s.rdb.Publish(ctx, w.changedChannel(), w.id+" 0 "+key).Result()
		if perr != nil {
			return fmt.Errorf("redisstore: publish change: %w: %w", session.ErrUnavailable, perr)
		}
		if n > 0 {
			sleep(ctx, StaleBound)
		}
		return nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("redisstore: closed: %w", session.ErrUnavailable)
	}
	w.seq++
	seq := w.seq
	hw := &heardWait{want: -1, done: make(chan struct{})}
	w.waits[seq] = hw
	w.mu.Unlock()
	forget := func() {
		w.mu.Lock()
		delete(w.waits, seq)
		w.mu.Unlock()
	}
	n, err := s.rdb.Publish(ctx, w.changedChannel(), w.id+" "+strconv.FormatUint(seq, 10)+" "+key).Result()
	if err != nil {
		forget()
		return fmt.Errorf("redisstore: publish change: %w: %w", session.ErrUnavailable, err)
	}
	w.mu.Lock()
	hw.want = int(n)
	if hw.got >= hw.want {
		delete(w.waits, seq)
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	t := time.NewTimer(StaleBound)
	defer t.Stop()
	select {
	case <-hw.done:
	case <-t.C:
		// Someone did not answer in time; it stops using the record
		// within the bound anyway.
		forget()
	case <-ctx.Done():
		forget()
	}
	return nil
}

// StaleBound is how long a record kept in memory may be used: a change not
// heard (a broken pub/sub connection) takes effect within it.
func (s *Store) StaleBound() time.Duration { return StaleBound }

func (w *watch) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.startMu.Lock()
	defer w.startMu.Unlock()
	w.stopped = true
	if w.ps != nil {
		close(w.quit)
		_ = w.ps.Close()
		<-w.done
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
