// Package bearer verifies the JWTs API clients present in
// "Authorization: Bearer": signature against the issuer's JWKS (fetched on
// first use, from discovery unless a JWKS URL is given), an allow-list of
// algorithms, iss, aud, exp, nbf and iat.
//
// Its errors are safe to put in a WWW-Authenticate error_description. It
// does not read requests or write answers; package gateway does.
package bearer
