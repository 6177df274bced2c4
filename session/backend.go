package session

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors a Backend returns. Callers test them with errors.Is.
var (
	// ErrNotFound means the key does not exist or has expired.
	ErrNotFound = errors.New("not found")
	// ErrTaken means a blob exists but another caller has already taken it
	// (its replay is in flight or done).
	ErrTaken = errors.New("already taken")
	// ErrTooLarge means a blob's body exceeded the limit given to PutBlob.
	// Nothing is kept.
	ErrTooLarge = errors.New("body too large")
	// ErrUnavailable wraps failures to reach the backend (store down), so the
	// gateway can fail closed with 503.
	ErrUnavailable = errors.New("store unavailable")
)

// TakenTTL is the least time a taken blob lives after TakeBlob: its body
// must stay readable to the end of a replay (and a restore must find it)
// even when the blob was taken moments before it would have expired.
const TakenTTL = 10 * time.Minute

// UploadGrace is how long, beyond its ttl, a blob's body may take to arrive
// in PutBlob: the ttl counts from the blob's completion, so a slow upload
// never outlives its own half-written chunks.
const UploadGrace = time.Hour

// Backend is the storage under the gateway's memory: small records (server
// side sessions, OIDC login state) and blobs (stashed submissions and kept
// results: a small metadata record plus a body written and read as a stream
// of chunks, never whole in memory).
//
// Backends store opaque bytes; Sealer encrypts them before they arrive.
// Keys are printable ASCII without spaces, at most 200 bytes (ValidKey).
// Every ttl must be positive. Records and blobs are separate: the same key
// may name one of each. A cancelled context fails an operation with an
// error other than ErrNotFound.
//
// The conformance suite in package session/sessiontest checks all of this;
// every implementation's tests run it.
//
// Implementations must make TakeBlob atomic across every process that shares
// the backend: of any number of concurrent calls for one key, exactly one
// succeeds.
type Backend interface {
	// Entries keeps stashes with their replay state.
	Entries

	// Get returns the record stored under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores a record under key, replacing any, expiring after ttl.
	// An expired record is ErrNotFound to every method.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes a record. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// GetDelete atomically returns and removes the record under key, so of
	// concurrent callers only one gets it (the others get ErrNotFound).
	GetDelete(ctx context.Context, key string) ([]byte, error)

	// PutBlob stores meta and the body read from body to EOF under key,
	// expiring after ttl. The body is written in chunks as it is read. If the
	// body holds more than limit bytes, PutBlob stops reading, removes what it
	// wrote and returns ErrTooLarge. The blob becomes visible to TakeBlob only
	// once it is complete; ttl counts from then. A failing body reader or
	// context also leaves nothing, and its error is returned (wrapped). A
	// blob already under key is replaced. It returns the number of body
	// bytes stored.
	PutBlob(ctx context.Context, key string, meta []byte, body io.Reader, limit int64, ttl time.Duration) (int64, error)
	// TakeBlob atomically marks the blob under key as taken, extends its
	// life to at least TakenTTL from now, and returns its meta and a reader
	// that streams its body. Only one TakeBlob for a key
	// succeeds; the others get ErrTaken (taken, not yet deleted) or
	// ErrNotFound. The caller must Close the reader, then either DeleteBlob
	// (consumed) or RestoreBlob (nothing of it was used).
	TakeBlob(ctx context.Context, key string) (meta []byte, body io.ReadCloser, err error)
	// RestoreBlob returns a taken blob to the untaken state, so one TakeBlob
	// may succeed again. Only for a blob none of which reached anyone.
	// Restoring an untaken blob changes nothing; a missing or expired one
	// is ErrNotFound.
	RestoreBlob(ctx context.Context, key string) error
	// DeleteBlob removes a blob and its body, taken or not. Deleting a
	// missing blob is not an error.
	DeleteBlob(ctx context.Context, key string) error

	// SetNX stores value under key for ttl unless an unexpired record is
	// there already, atomically across every process sharing the backend.
	// It returns the record now under key and whether it is value (stored
	// by this call). Leases and one-time bindings are built on it.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (current []byte, stored bool, err error)
	// DeleteIf removes the record under key only if it holds exactly value,
	// atomically (a lease is released only by its holder). It reports
	// whether it removed it; a missing key is false, not an error.
	DeleteIf(ctx context.Context, key string, value []byte) (bool, error)

	// Ping reports whether the backend can serve requests (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
