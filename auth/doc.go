// Package auth decides who someone is and whether they may pass: local users
// from an htpasswd file (bcrypt), the login rate limiter, and access
// policies. Sub-packages handle OIDC login (auth/oidc), bearer JWTs for API
// clients (auth/bearer) and the signed identity assertion (auth/assertion).
//
// It knows nothing of cookies, stashes or the request path; package gateway
// calls it.
package auth
