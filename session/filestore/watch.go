package filestore

import (
	"context"
	"sync"
	"time"

	"github.com/postern/postern/session"
)

var _ session.Watcher = (*Store)(nil)

// watchers are the functions Watch registered. The file is locked by one
// process, so every change is made here and told to them before Changed
// returns: records may be kept in memory without a time bound.
type watchers struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(string)
}

// Watch calls fn with every key named in Changed until stop is called.
func (s *Store) Watch(fn func(key string)) (stop func(), err error) {
	w := &s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(string){}
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.fns, id)
	}, nil
}

// Changed tells every watcher that key changed, before it returns.
func (s *Store) Changed(_ context.Context, key string) error {
	w := &s.watch
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, fn := range w.fns {
		fn(key)
	}
	return nil
}

// StaleBound is 0: every change is heard at once.
func (s *Store) StaleBound() time.Duration { return 0 }
