// Package oidc logs people in at an OpenID Connect provider with the
// authorization code flow (state, nonce, PKCE S256) and verifies the tokens
// it hands out.
//
// Discovery and the provider's key set are fetched on first use and retried
// while the provider is unreachable (Remote), so a provider that is down
// when the gateway starts does not stop it; Provider.Ready tells /readyz.
// Token checks live in VerifyJWT, shared with package bearer: signature
// against the JWKS with an allow-list of algorithms (never none, never
// HMAC), iss, aud, exp, nbf, iat and, for ID tokens, azp and nonce.
//
// It does not keep sessions, state or nonces: the gateway remembers those
// and passes them back in.
package oidc
