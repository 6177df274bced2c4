package config

import (
	"time"
)

// Config is every setting of postern, as an operator writes it. Load fills it
// from flags, environment and file; Validate says what is wrong with it.
type Config struct {
	// File is the YAML file the settings were read from; empty when none.
	File string
	// Server is where postern listens and how it is reached.
	Server Server
	// Upstream is the single upstream URL (the one-route case): http(s)://
	// or unix:///path/app.sock. Exclusive with Routes.
	Upstream string
	// UpstreamCAFile lists PEM CA certificates trusted for https upstreams
	// (besides the system's), for apps with a private CA.
	UpstreamCAFile string
	// Routes send requests to several upstreams by host and path prefix,
	// each with its own policy; only from the YAML file.
	Routes []Route
	// PublicPaths are path prefixes of the single upstream served without a
	// login (webhooks, health checks). Routes use Route.Public instead.
	PublicPaths []string
	// SkipAuthPreflight passes CORS preflights to the app without a login.
	SkipAuthPreflight bool
	// IdempotentResend says the single upstream honours Idempotency-Key:
	// a submission whose send was cut after it may have reached the app is
	// sent again by the gateway itself. Routes use Route.IdempotentResend.
	IdempotentResend bool
	// Cookie holds the key material for cookies and stash encryption.
	Cookie Cookie
	// HtpasswdFile lists local users in "htpasswd -B" (bcrypt) format.
	HtpasswdFile string
	// OIDC is the login through an OpenID Connect provider.
	OIDC OIDC
	// JWT accepts bearer JWTs from API clients.
	JWT JWT
	// SignAssertion sends upstreams X-Postern-Assertion.
	SignAssertion bool
	// Allow says who may pass when a route has no policy of its own.
	Allow Allow
	// Store is where sessions and stashes live: "file:PATH" or a redis URL.
	Store string
	// Stash bounds the submissions kept across a login.
	Stash Stash
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration
	// Log says how postern logs.
	Log Log
	// Pages are what the gateway's own pages look like.
	Pages Pages
}

// Pages are what the gateway's own pages (login, logout, errors) look like.
type Pages struct {
	// BrandName is the organisation's name, shown in every page's title and
	// heading.
	BrandName string
	// TemplatesDir holds templates that replace the embedded ones of the
	// same name (docs/templates.md).
	TemplatesDir string
}

// Server is where postern listens and how it is reached.
type Server struct {
	// Listen is the address the gateway serves on (host:port).
	Listen string
	// AdminListen serves Prometheus metrics; empty disables it.
	AdminListen string
	// PublicURL is the gateway's external base URL; empty derives it from
	// Listen.
	PublicURL string
	// TrustedProxies are the addresses (IP or CIDR) of proxies in front of
	// the gateway whose X-Forwarded-* headers it believes.
	TrustedProxies []string
	// TLSCertFile and TLSKeyFile are PEM files: when set, Listen serves
	// HTTPS (and HTTP/2) with them, re-read on SIGHUP and when they change.
	TLSCertFile string
	TLSKeyFile  string
	// ShutdownDelay is how long /.postern/readyz answers 503 after SIGTERM
	// before the listener closes, so load balancers stop sending requests.
	ShutdownDelay time.Duration
	// ShutdownTimeout is how long requests in flight (and replays) get to
	// finish once the listener has closed.
	ShutdownTimeout time.Duration
}

// Route sends requests for a host and path prefix to one upstream.
type Route struct {
	Host       string
	PathPrefix string
	Upstream   string
	// UpstreamCAFile is the route's own CA file for an https upstream; when
	// empty the global one applies.
	UpstreamCAFile string
	// Allow is the route's own policy; when empty the global one applies.
	Allow Allow
	// Public serves the route without a login (identity headers still
	// removed, nothing stashed).
	Public bool
	// IdempotentResend says the route's app honours Idempotency-Key.
	IdempotentResend bool
	// Line is where the route starts in the config file, for messages.
	Line int
}

// Cookie holds base64 key material, at least 32 bytes decoded. Secret (or
// the file SecretFile) seals; Previous secrets still open what older secrets
// sealed, so a secret can be rotated without logging everyone out.
type Cookie struct {
	Secret     string
	SecretFile string
	Previous   []string
	// Domain shares the session cookie with every host under it (single
	// sign-on across sibling hosts); empty keeps it host-only.
	Domain string
}

// OIDC is the login through an OpenID Connect provider.
type OIDC struct {
	Issuer           string
	ClientID         string
	ClientSecret     string
	ClientSecretFile string
	Scopes           []string
	// GroupsClaim names the ID token claim that lists the person's groups.
	GroupsClaim string
	// PassAccessToken sends the access token upstream.
	PassAccessToken bool
}

// JWT accepts bearer JWTs from API clients.
type JWT struct {
	Issuer   string
	Audience string
	// JWKSURL overrides the key set found through the issuer's discovery.
	JWKSURL string
}

// Allow lists who may pass. Empty lets anyone who logs in pass.
type Allow struct {
	Emails  []string
	Domains []string
	Groups  []string
}

// IsZero reports whether the policy lets anyone who logs in pass.
func (a Allow) IsZero() bool {
	return len(a.Emails) == 0 && len(a.Domains) == 0 && len(a.Groups) == 0
}

// Stash bounds the submissions kept across a login.
type Stash struct {
	// MaxBody is the largest body kept, in bytes.
	MaxBody int64
	// TTL is how long a stash waits for its login.
	TTL time.Duration
	// CrossSite is "reject" or "allow".
	CrossSite string
	// MaxPending is how many submissions one browser may have waiting.
	MaxPending int
	// StoreBudget is the store size at which new submissions are refused;
	// 0 for none.
	StoreBudget int64
	// MaxPerAddress is how many submissions one client address may have
	// kept without a session (in a window of TTL); 0 for no bound.
	MaxPerAddress int64
	// MaxBytesPerAddress bounds their body bytes; 0 for no bound, -1 for
	// the default (StoreBudget/20, at least MaxBody). Use
	// BytesPerAddress for the value in effect.
	MaxBytesPerAddress int64
}

// AddressShare is the share of the store budget one client address may
// hold by default: 1/AddressShare.
const AddressShare = 20

// BytesPerAddress is the bound in effect on the body bytes one client
// address may have kept: the setting, or by default a twentieth of the
// store budget, at least one largest body (so any submission can be
// kept), or 10 largest bodies without a budget.
func (s Stash) BytesPerAddress() int64 {
	if s.MaxBytesPerAddress >= 0 {
		return s.MaxBytesPerAddress
	}
	if s.StoreBudget <= 0 {
		return 10 * s.MaxBody
	}
	return max(s.StoreBudget/AddressShare, s.MaxBody)
}

// Log says how postern logs.
type Log struct {
	Level  string // debug, info, warn or error
	Format string // text or json
	// Access writes one line per request at level info.
	Access bool
}
