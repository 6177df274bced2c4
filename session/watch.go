package session

import (
	"context"
	"time"
)

// Watcher is implemented by backends that tell every process sharing them
// when a record changes, so the Store may keep session records in memory
// and still see a logout or a token refresh at once. A backend without it
// gets no cache: every session lookup reads the backend.
type Watcher interface {
	// Watch calls fn with the key of every record named in a Changed call,
	// by this process or any other sharing the backend, from the moment
	// Watch returns until stop is called. An empty key means any record
	// may have changed unheard (the backend's connection broke): forget
	// them all. fn must not block.
	Watch(fn func(key string)) (stop func(), err error)
	// Changed tells every watching process that the record under key was
	// set or deleted, and returns once each has heard it, or once
	// StaleBound has passed (a process that did not hear by then has
	// forgotten the record anyway).
	Changed(ctx context.Context, key string) error
	// StaleBound is how long a process may use a record it keeps in memory
	// without having heard of a change: 0 means without bound (one process
	// owns the backend and hears every change before it returns).
	StaleBound() time.Duration
}
