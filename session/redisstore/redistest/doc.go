// Package redistest starts real redis-server processes on loopback for
// tests: single servers, sentinels, restarts on the same port and directory.
// A test without redis-server on PATH is skipped with a clear message, or
// fails when CI=true (CI must run the Redis tests).
//
// It is for tests only; nothing in the product imports it.
package redistest
