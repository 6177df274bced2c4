package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A setting is one row of the configuration table: its flag name (from which
// the environment variable and the YAML key are derived), its default, what
// it means, and how a value is written into a Config.
type setting struct {
	name  string // flag name, e.g. "stash-max-body"
	def   string // default, as text; "" for none
	usage string
	// list settings may be repeated; each value is passed to set on its own.
	list bool
	// boolean settings may be given as a bare flag.
	boolean bool
	set     func(c *Config, v string) error
}

// EnvName is the environment variable of a flag: POSTERN_ and the flag
// name in upper snake case.
func EnvName(flag string) string {
	return "POSTERN_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// KeyName is the YAML key of a flag: the flag name in snake case.
func KeyName(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// settings is the configuration table. "config" itself is handled by Load.
func settings() []setting {
	str := func(p func(c *Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *p(c) = v; return nil }
	}
	add := func(p func(c *Config) *[]string) func(*Config, string) error {
		return func(c *Config, v string) error {
			if v = strings.TrimSpace(v); v == "" {
				return fmt.Errorf("empty value")
			}
			*p(c) = append(*p(c), v)
			return nil
		}
	}
	dur := func(p func(c *Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a duration (want e.g. 90s, 10m or 12h)", v)
			}
			*p(c) = d
			return nil
		}
	}
	oneOf := func(p func(c *Config) *string, allowed ...string) func(*Config, string) error {
		return func(c *Config, v string) error {
			for _, a := range allowed {
				if v == a {
					*p(c) = v
					return nil
				}
			}
			return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	boolean := func(p func(c *Config) *bool) func(*Config, string) error {
		return func(c *Config, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*p(c) = b
			return nil
		}
	}
	return []setting{
		{name: "listen", def: "127.0.0.1:8080", usage: "address to serve, host:port (port 0 picks a free one)",
			set: str(func(c *Config) *string { return &c.Server.Listen })},
		{name: "admin-listen", def: "127.0.0.1:9090", usage: "address of the Prometheus metrics listener; empty or off disables it",
			set: func(c *Config, v string) error {
				if strings.EqualFold(strings.TrimSpace(v), "off") {
					v = ""
				}
				c.Server.AdminListen = v
				return nil
			}},
		{name: "trusted-proxy", list: true, usage: "address or CIDR of a proxy in front of postern whose X-Forwarded-For/-Proto/-Host are believed (repeatable)",
			set: add(func(c *Config) *[]string { return &c.Server.TrustedProxies })},
		{name: "public-url", usage: "the gateway's external base URL, e.g. https://apps.example.com (default derived from --listen)",
			set: str(func(c *Config) *string { return &c.Server.PublicURL })},
		{name: "tls-cert-file", usage: "PEM certificate (with its chain) to serve HTTPS and HTTP/2 on --listen; re-read on SIGHUP and when the file changes",
			set: str(func(c *Config) *string { return &c.Server.TLSCertFile })},
		{name: "tls-key-file", usage: "PEM private key of --tls-cert-file",
			set: str(func(c *Config) *string { return &c.Server.TLSKeyFile })},
		{name: "shutdown-delay", def: "0s", usage: "after SIGTERM, how long /.postern/readyz answers 503 (while requests are still served) before the listener closes, so load balancers stop sending",
			set: dur(func(c *Config) *time.Duration { return &c.Server.ShutdownDelay })},
		{name: "shutdown-timeout", def: "30s", usage: "after the listener closes, how long requests in flight and replays get to finish",
			set: dur(func(c *Config) *time.Duration { return &c.Server.ShutdownTimeout })},
		{name: "upstream", usage: "upstream URL for the single-route case: http(s)://HOST:PORT or unix:///path/app.sock (YAML routes: for several)",
			set: str(func(c *Config) *string { return &c.Upstream })},
		{name: "public-path", list: true, usage: "path prefix of --upstream served without a login, e.g. /webhooks (repeatable; YAML routes: public: true)",
			set: func(c *Config, v string) error {
				c.PublicPaths = append(c.PublicPaths, strings.TrimSpace(v))
				return nil
			}},
		{name: "skip-auth-preflight", def: "false", boolean: true, usage: "pass CORS preflights (OPTIONS with Origin and Access-Control-Request-Method) to the app without a login",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.SkipAuthPreflight = b
				return nil
			}},
		{name: "idempotent-resend", def: "false", boolean: true, usage: "the --upstream app honours Idempotency-Key: resend a submission cut after it may have reached the app, instead of asking (YAML routes: idempotent_resend: true)",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.IdempotentResend = b
				return nil
			}},
		{name: "upstream-ca-file", usage: "PEM CA certificates trusted (besides the system's) for https upstreams with a private CA",
			set: str(func(c *Config) *string { return &c.UpstreamCAFile })},
		{name: "cookie-secret", usage: "base64 key material (at least 32 bytes) for cookies and stash encryption",
			set: str(func(c *Config) *string { return &c.Cookie.Secret })},
		{name: "cookie-secret-file", usage: "file holding the cookie secret (instead of --cookie-secret)",
			set: str(func(c *Config) *string { return &c.Cookie.SecretFile })},
		{name: "cookie-secret-previous", list: true, usage: "earlier cookie secret still accepted while rotating (repeatable)",
			set: add(func(c *Config) *[]string { return &c.Cookie.Previous })},
		{name: "cookie-domain", usage: "share the session cookie with every host under this domain, e.g. example.com (single sign-on across sibling hosts; default host-only)",
			set: str(func(c *Config) *string { return &c.Cookie.Domain })},
		{name: "htpasswd-file", usage: "local users, Apache htpasswd -B (bcrypt) format",
			set: str(func(c *Config) *string { return &c.HtpasswdFile })},
		{name: "oidc-issuer", usage: "OpenID Connect issuer URL",
			set: str(func(c *Config) *string { return &c.OIDC.Issuer })},
		{name: "oidc-client-id", usage: "OpenID Connect client id",
			set: str(func(c *Config) *string { return &c.OIDC.ClientID })},
		{name: "oidc-client-secret", usage: "OpenID Connect client secret",
			set: str(func(c *Config) *string { return &c.OIDC.ClientSecret })},
		{name: "oidc-client-secret-file", usage: "file holding the OpenID Connect client secret",
			set: str(func(c *Config) *string { return &c.OIDC.ClientSecretFile })},
		{name: "oidc-scopes", def: "openid email profile", list: true, usage: "OpenID Connect scopes, separated by spaces or commas (repeatable)",
			set: func(c *Config, v string) error {
				c.OIDC.Scopes = append(c.OIDC.Scopes, strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })...)
				return nil
			}},
		{name: "oidc-groups-claim", def: "groups", usage: "ID token claim that lists the person's groups",
			set: str(func(c *Config) *string { return &c.OIDC.GroupsClaim })},
		{name: "pass-access-token", def: "false", boolean: true, usage: "send the OIDC access token upstream as X-Forwarded-Access-Token",
			set: boolean(func(c *Config) *bool { return &c.OIDC.PassAccessToken })},
		{name: "sign-assertion", def: "false", boolean: true, usage: "send upstreams a signed identity assertion (X-Postern-Assertion, keys at /.postern/jwks.json)",
			set: boolean(func(c *Config) *bool { return &c.SignAssertion })},
		{name: "jwt-issuer", usage: "issuer (iss) of bearer JWTs accepted from API clients",
			set: str(func(c *Config) *string { return &c.JWT.Issuer })},
		{name: "jwt-audience", usage: "audience (aud) bearer JWTs must carry",
			set: str(func(c *Config) *string { return &c.JWT.Audience })},
		{name: "jwt-jwks-url", usage: "key set URL for bearer JWTs (default from the issuer's discovery)",
			set: str(func(c *Config) *string { return &c.JWT.JWKSURL })},
		{name: "allow-email", list: true, usage: "email address allowed to pass (repeatable; default anyone who logs in)",
			set: add(func(c *Config) *[]string { return &c.Allow.Emails })},
		{name: "allow-domain", list: true, usage: "email domain allowed to pass (repeatable)",
			set: add(func(c *Config) *[]string { return &c.Allow.Domains })},
		{name: "allow-group", list: true, usage: "group allowed to pass (repeatable)",
			set: add(func(c *Config) *[]string { return &c.Allow.Groups })},
		{name: "store", def: "file:./postern-data", usage: "file:PATH (embedded, single node) or redis://, rediss://, redis-sentinel://, redis-cluster:// URL (several replicas)",
			set: str(func(c *Config) *string { return &c.Store })},
		{name: "stash-max-body", def: "10MiB", usage: "largest body kept across a login, e.g. 10MiB, 512KiB, 100MB",
			set: func(c *Config, v string) error {
				n, err := ParseSize(v)
				if err != nil {
					return err
				}
				c.Stash.MaxBody = n
				return nil
			}},
		{name: "stash-ttl", def: "10m", usage: "how long a stash waits for its login",
			set: dur(func(c *Config) *time.Duration { return &c.Stash.TTL })},
		{name: "stash-max-pending", def: "10", usage: "submissions one browser may have waiting for its login at once",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 1 {
					return fmt.Errorf("%q is not a whole number of at least 1", v)
				}
				c.Stash.MaxPending = n
				return nil
			}},
		{name: "store-budget", def: "1GiB", usage: "stop keeping new submissions while the store holds this much (0: no budget)",
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "0" {
					c.Stash.StoreBudget = 0
					return nil
				}
				n, err := ParseSize(v)
				if err != nil {
					return err
				}
				c.Stash.StoreBudget = n
				return nil
			}},
		{name: "stash-max-per-address", def: "100", usage: "submissions one client address may have kept without a session (within --stash-ttl; 0: no bound)",
			set: func(c *Config, v string) error {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("%q is not a whole number of at least 0", v)
				}
				c.Stash.MaxPerAddress = n
				return nil
			}},
		{name: "stash-max-bytes-per-address", def: "auto", usage: "body bytes one client address may have kept without a session, e.g. 50MiB (auto: a twentieth of --store-budget, at least --stash-max-body; 0: no bound)",
			set: func(c *Config, v string) error {
				switch strings.TrimSpace(v) {
				case "auto":
					c.Stash.MaxBytesPerAddress = -1
					return nil
				case "0":
					c.Stash.MaxBytesPerAddress = 0
					return nil
				}
				n, err := ParseSize(v)
				if err != nil {
					return fmt.Errorf("%w (or auto, or 0)", err)
				}
				c.Stash.MaxBytesPerAddress = n
				return nil
			}},
		{name: "cross-site-stash", def: "reject", usage: "reject or allow stashing of cross-site submissions",
			set: oneOf(func(c *Config) *string { return &c.Stash.CrossSite }, "reject", "allow")},
		{name: "session-ttl", def: "12h", usage: "how long a login lasts",
			set: dur(func(c *Config) *time.Duration { return &c.SessionTTL })},
		{name: "brand-name", def: "postern", usage: "the organisation's name on the gateway's pages (title and heading)",
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if v == "" || len(v) > 100 || strings.ContainsAny(v, "\r\n") {
					return fmt.Errorf("%q: want a name of 1 to 100 characters on one line", v)
				}
				c.Pages.BrandName = v
				return nil
			}},
		{name: "templates-dir", usage: "directory of page templates replacing the embedded ones of the same name (see docs/templates.md)",
			set: str(func(c *Config) *string { return &c.Pages.TemplatesDir })},
		{name: "log-level", def: "info", usage: "debug, info, warn or error",
			set: oneOf(func(c *Config) *string { return &c.Log.Level }, "debug", "info", "warn", "error")},
		{name: "log-format", def: "text", usage: "text or json",
			set: oneOf(func(c *Config) *string { return &c.Log.Format }, "text", "json")},
		{name: "access-log", def: "true", boolean: true, usage: "one log line per request at level info (method, path without query, status, bytes, duration, user, route, outcome, client, request id); false turns it off",
			set: boolean(func(c *Config) *bool { return &c.Log.Access })},
	}
}
