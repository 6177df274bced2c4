package gateway

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/session"
)

// Options are the gateway's settings, as an operator sets them.
type Options struct {
	// PublicURL is the gateway's external base URL (scheme, host, optional
	// path is not supported). Origins of submissions are checked against it
	// and cookies are marked Secure when it is https.
	PublicURL *url.URL
	// Routes map requests to upstreams, first match wins. At least one.
	Routes []Route
	// StashMaxBody is the largest body kept across a login, in bytes.
	StashMaxBody int64
	// StashTTL is how long a stash waits for its login.
	StashTTL time.Duration
	// StashMaxPending bounds the stashes one browser may have waiting; 0
	// means no bound.
	StashMaxPending int
	// StashMaxPerAddress bounds the submissions kept for one client
	// address (IPv6: per /64) without a session, over a window of
	// StashTTL; 0 means no bound.
	StashMaxPerAddress int64
	// StashMaxBytesPerAddress bounds their body bytes the same way; 0
	// means no bound.
	StashMaxBytesPerAddress int64
	// StoreBudget refuses new stashes while the store holds this many bytes
	// (for backends that report usage); 0 means no budget.
	StoreBudget int64
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration
	// AllowCrossSiteStash stashes cross-site unauthenticated submissions
	// instead of refusing them with 403 (SPEC §6). Off by default.
	AllowCrossSiteStash bool
	// PassAccessToken sends the OIDC access token upstream as
	// X-Forwarded-Access-Token.
	PassAccessToken bool
	// TrustedProxies are proxies in front of the gateway: for requests from
	// them, X-Forwarded-For, -Proto and -Host are believed (the client
	// address for rate limits, and the chain passed upstream).
	TrustedProxies []netip.Prefix
	// AccessLog writes one line per request at level info: method, path
	// (never the query), status, bytes, duration, user, route, outcome,
	// client address and request id.
	AccessLog bool
	// SkipAuthPreflight passes CORS preflights (OPTIONS with Origin and
	// Access-Control-Request-Method) to the app without a login.
	SkipAuthPreflight bool
	// BrandName is the organisation's name on every page; empty: "postern".
	BrandName string
	// TemplatesDir holds page templates that replace the embedded ones of
	// the same name (docs/templates.md); empty: the embedded ones only.
	TemplatesDir string
}

// Route sends requests for a host and path prefix to one upstream, under one
// policy.
type Route struct {
	// Host matches the request's host (without port); empty matches any.
	Host string
	// PathPrefix matches the start of the path; empty or "/" matches any.
	PathPrefix string
	// Upstream is where requests go: http(s) with a host and optional base
	// path, or unix:///path/app.sock for an app on a unix socket (it gets
	// the Host the client asked for).
	Upstream *url.URL
	// RootCAs verify an https upstream's certificate (a private CA); nil
	// uses the system's roots.
	RootCAs *x509.CertPool
	// Policy says who may pass on this route.
	Policy auth.Policy
	// IdempotentResend says the app honours Idempotency-Key: a kept
	// submission whose send was cut after it may have reached the app is
	// sent again by the gateway (same key) instead of asking the person.
	IdempotentResend bool
	// Public sends every request of the route to the app without a login
	// (identity headers still removed, nothing stashed).
	Public bool
	// PublicPaths are path prefixes of the route served without a login,
	// like Public (webhooks, health checks); each starts with "/".
	PublicPaths []string

	// Worked out by New (resolveUpstream): the URL requests are rewritten
	// to, the transport that carries them, and whether the client's Host
	// is kept.
	target    *url.URL
	transport http.RoundTripper
	keepHost  bool
}

// PasswordChecker verifies local users (auth.Htpasswd).
type PasswordChecker interface {
	Check(user, password string) (auth.Identity, error)
}

// LoginLimiter limits failed local logins across replicas
// (auth.LoginLimiter): Begin counts an attempt as a failure unless a limit
// is reached, and the attempt's Succeeded takes that back.
type LoginLimiter interface {
	Begin(ctx context.Context, user, addr string) (*auth.LoginAttempt, error)
}

// BearerVerifier checks API clients' bearer JWTs (auth/bearer.Verifier).
// Its errors' messages are safe to show to the client.
type BearerVerifier interface {
	Verify(ctx context.Context, raw string) (auth.Identity, error)
}

// AssertionSigner signs the identity assertion sent upstream
// (auth/assertion.Signer) and publishes its keys.
type AssertionSigner interface {
	Sign(id auth.Identity, audience string) (string, error)
	JWKS() []byte
}

// Parts are the gateway's collaborators. Store, Cookies and at least one
// login method (Passwords or OIDC) are required.
type Parts struct {
	Store     *session.Store
	Cookies   *session.Cookies
	Passwords PasswordChecker // local login; nil when not configured
	OIDC      OIDCLogin       // OIDC login; nil when not configured
	Bearer    BearerVerifier  // bearer JWTs for API clients; nil: not accepted
	Assertion AssertionSigner // X-Postern-Assertion; nil: not sent
	Limiter   LoginLimiter    // failed-login limiter; nil disables
	Logger    *slog.Logger
	// Transport carries requests to upstreams; nil uses NewTransport().
	Transport http.RoundTripper
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Ready reports extra readiness conditions (e.g. the OIDC provider);
	// nil means none.
	Ready func(context.Context) error
}
