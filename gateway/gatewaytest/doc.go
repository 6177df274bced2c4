// Package gatewaytest holds the plumbing the gateway's integration tests
// share: an upstream that records what reaches it; a browser-like client
// with a cookie jar that follows no redirect, so that every hop of the
// stash, 307, login and 303 flow is asserted by the test itself; and the
// htpasswd line of a test user; and a certificate authority for TLS tests.
//
// It starts no gateway: each test package wires its own (in process, behind
// nginx, or as the real binary), and keeps its own assertions.
//
// It is for tests only; nothing in the product imports it.
package gatewaytest
