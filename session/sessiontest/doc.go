// Package sessiontest is the conformance suite every session.Backend must
// pass: records, atomic get-and-delete, expiry, blobs streamed byte for byte,
// limits, exactly-once TakeBlob under concurrency, and stash entries
// (session.Entries). A backend's own tests call Run with a constructor for a
// fresh, empty backend, and RunReplay, the suite of the replay state machine
// (session.Store's Lease, MarkSent, Answer, ...) over that backend with two
// Stores standing for two replicas and a settable Clock.
//
// It tests only what session.Backend promises; backend-specific behaviour
// (restart survival, sweeping, clustering) belongs in the backend's tests.
package sessiontest
