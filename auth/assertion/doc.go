// Package assertion signs X-Postern-Assertion: a short-lived JWT (ES256)
// that tells an upstream who a request comes from, so the upstream can
// verify identity with the public keys the gateway publishes at
// /.postern/jwks.json instead of trusting the network.
//
// It does not set headers or serve the key set; package gateway does.
package assertion
