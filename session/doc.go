// Package session is what the gateway remembers between requests: the
// browser's cookie (a small, authenticated and encrypted record that names a
// server-side session) and the store behind it, which keeps server-side
// sessions, stashed submissions and kept results.
//
// Backends implement Backend: the embedded file store (bbolt) for a single
// node, and Redis (package session/redisstore) for several replicas. Everything
// written to a backend is encrypted first by Sealer, so no body, token or
// identity is readable at rest.
//
// It is not the request path: deciding when to stash, replay or deliver
// belongs to package gateway.
package session
