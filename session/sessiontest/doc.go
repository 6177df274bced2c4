// Package sessiontest is the conformance suite every session.Backend must
// pass: records, atomic get-and-delete, expiry, blobs streamed byte for byte,
// limits, and exactly-once TakeBlob under concurrency. A backend's own tests
// call Run with a constructor for a fresh, empty backend.
//
// It tests only what session.Backend promises; backend-specific behaviour
// (restart survival, sweeping, clustering) belongs in the backend's tests.
package sessiontest
