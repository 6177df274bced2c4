package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/session/redisstore"
)

// MinSecretBytes is the least key material a cookie secret must decode to.
const MinSecretBytes = 32

const secretHint = "generate one with: head -c 32 /dev/urandom | base64"

// Validate reports every problem with the settings at once, each naming the
// setting and what to do. It reads the secret and htpasswd files to check
// them, but keeps nothing.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !validHostPort(c.Server.Listen) {
		add("listen: %q is not host:port (e.g. 127.0.0.1:8080, or :8080 for every interface)", c.Server.Listen)
	}
	if c.Server.AdminListen != "" {
		if !validHostPort(c.Server.AdminListen) {
			add("admin_listen: %q is not host:port (e.g. 127.0.0.1:9090; off disables metrics)", c.Server.AdminListen)
		}
	}
	if _, err := c.Server.TrustedPrefixes(); err != nil {
		add("trusted_proxy: %w", err)
	}
	if c.Server.PublicURL != "" {
		if _, err := ParsePublicURL(c.Server.PublicURL); err != nil {
			add("public_url: %w", err)
		}
	}
	errs = append(errs, c.validateServing()...)

	switch {
	case c.Upstream != "" && len(c.Routes) > 0:
		add("upstream: cannot be combined with routes: in the config file (use one or the other)")
	case c.Upstream == "" && len(c.Routes) == 0:
		add("upstream: required (set --upstream http://HOST:PORT, or list routes: in the config file)")
	case c.Upstream != "":
		if err := checkUpstream(c.Upstream); err != nil {
			add("upstream: %w", err)
		}
	}
	for i, p := range c.PublicPaths {
		if err := checkPublicPath(p); err != nil {
			add("public_path[%d]: %w", i, err)
		}
	}
	if c.IdempotentResend && len(c.Routes) > 0 {
		add("idempotent_resend: only for the single --upstream; with routes:, set idempotent_resend: true on the route whose app honours Idempotency-Key")
	}
	if len(c.PublicPaths) > 0 && len(c.Routes) > 0 {
		add("public_path: only for the single --upstream; with routes:, give a route its own path_prefix and public: true")
	}
	for i, r := range c.Routes {
		errs = append(errs, r.validate(fmt.Sprintf("routes[%d] (%s line %d)", i, c.File, r.Line))...)
	}

	if c.Cookie.Secret != "" && c.Cookie.SecretFile != "" {
		add("cookie_secret: set either cookie_secret or cookie_secret_file, not both")
	} else if _, err := c.CookieSecrets(); err != nil {
		errs = append(errs, err)
	}

	if c.Cookie.Domain != "" {
		if err := checkCookieDomain(c.Cookie.Domain); err != nil {
			add("cookie_domain: %w", err)
		}
	}

	hasOIDC := c.OIDC.Issuer != "" || c.OIDC.ClientID != ""
	if c.HtpasswdFile == "" && !hasOIDC {
		add("login: no login method (set --htpasswd-file, or --oidc-issuer and --oidc-client-id)")
	}
	if c.HtpasswdFile != "" {
		// Read it as the gateway will, so check-config catches what
		// start-up would refuse.
		if _, err := os.Stat(c.HtpasswdFile); err != nil {
			add("htpasswd_file: %w (create one with: postern hash-password --user NAME > users.htpasswd)", err)
		} else if users, err := auth.LoadHtpasswd(c.HtpasswdFile); err != nil {
			add("htpasswd_file: %w", err)
		} else if users.Len() == 0 {
			add("htpasswd_file: %s has no users, so nobody could log in (add one with: postern hash-password --user NAME >> %s)", c.HtpasswdFile, c.HtpasswdFile)
		}
	}
	if hasOIDC {
		errs = append(errs, c.OIDC.validate()...)
	} else if c.OIDC.ClientSecret != "" || c.OIDC.ClientSecretFile != "" {
		add("oidc_client_secret: set only with oidc_issuer and oidc_client_id")
	}

	if c.JWT.Issuer != "" || c.JWT.Audience != "" || c.JWT.JWKSURL != "" {
		if err := checkHTTPURL(c.JWT.Issuer); err != nil {
			add("jwt_issuer: %w (bearer JWTs need an issuer)", err)
		}
		if c.JWT.Audience == "" {
			add("jwt_audience: required with jwt_issuer (the aud your API clients' tokens carry)")
		}
		if c.JWT.JWKSURL != "" {
			if err := checkHTTPURL(c.JWT.JWKSURL); err != nil {
				add("jwt_jwks_url: %w", err)
			}
		}
	}

	errs = append(errs, c.Allow.validate("allow")...)

	if _, _, err := ParseStore(c.Store); err != nil {
		add("store: %w", err)
	}
	if c.Pages.TemplatesDir != "" {
		// Loaded as the gateway will, so check-config catches what start-up
		// would refuse: a missing directory, an unknown or broken template.
		if err := gateway.CheckTemplates(c.Pages.TemplatesDir); err != nil {
			add("templates_dir: %w", err)
		}
	}
	if c.Stash.MaxBody <= 0 {
		add("stash_max_body: must be more than 0 bytes (e.g. 10MiB)")
	} else if c.Stash.MaxBody > maxStashBody {
		add("stash_max_body: at most %s (a submission kept across a login lives in the store)", FormatSize(maxStashBody))
	}
	if c.Stash.TTL <= 0 {
		add("stash_ttl: must be positive (e.g. 10m)")
	}
	if c.SessionTTL <= 0 {
		add("session_ttl: must be positive (e.g. 12h)")
	}
	return errors.Join(errs...)
}

func (r Route) validate(where string) []error {
	var errs []error
	if r.Upstream == "" {
		errs = append(errs, fmt.Errorf("%s: upstream: required", where))
	} else if err := checkUpstream(r.Upstream); err != nil {
		errs = append(errs, fmt.Errorf("%s: upstream: %w", where, err))
	}
	if r.UpstreamCAFile != "" {
		if _, err := LoadCAPool(r.UpstreamCAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: upstream_ca_file: %w", where, err))
		}
	}
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		errs = append(errs, fmt.Errorf("%s: path_prefix: %q must start with /", where, r.PathPrefix))
	}
	if strings.ContainsAny(r.Host, ":/") {
		errs = append(errs, fmt.Errorf("%s: host: %q must be a host name only (no scheme, port or path)", where, r.Host))
	}
	return append(errs, r.Allow.validate(where)...)
}

// validate checks the policy with the same rules the gateway applies.
func (a Allow) validate(where string) []error {
	err := auth.Policy{Emails: a.Emails, Domains: a.Domains, Groups: a.Groups}.Validate()
	if err == nil {
		return nil
	}
	return []error{fmt.Errorf("%s: %w", where, err)}
}

func (o OIDC) validate() []error {
	var errs []error
	if err := checkHTTPURL(o.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("oidc_issuer: %w (required with oidc_client_id)", err))
	} else if u, _ := url.Parse(o.Issuer); u.Scheme != "https" && !isLoopback(u.Hostname()) {
		errs = append(errs, fmt.Errorf("oidc_issuer: %q must be https (http only on loopback, for tests)", o.Issuer))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("oidc_client_id: required with oidc_issuer (from your provider's client registration)"))
	}
	if o.ClientSecret != "" && o.ClientSecretFile != "" {
		errs = append(errs, errors.New("oidc_client_secret: set either oidc_client_secret or oidc_client_secret_file, not both"))
	} else if _, err := o.Secret(); err != nil {
		errs = append(errs, err)
	}
	hasOpenID := false
	for _, s := range o.Scopes {
		hasOpenID = hasOpenID || s == "openid"
	}
	if !hasOpenID {
		errs = append(errs, errors.New("oidc_scopes: must include openid"))
	}
	if o.GroupsClaim == "" {
		errs = append(errs, errors.New("oidc_groups_claim: must not be empty (the default is groups)"))
	}
	return errs
}

// Secret returns the OIDC client secret, read from its file if one is given.
// Surrounding white space in the file is ignored.
func (o OIDC) Secret() (string, error) {
	if o.ClientSecretFile == "" {
		return o.ClientSecret, nil
	}
	b, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("oidc_client_secret_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CookieSecrets returns the decoded cookie secrets, newest first: the current
// one (from cookie_secret or cookie_secret_file), then the previous ones.
func (c *Config) CookieSecrets() ([][]byte, error) {
	var errs []error
	cur, name := c.Cookie.Secret, "cookie_secret"
	if c.Cookie.SecretFile != "" {
		name = "cookie_secret_file"
		b, err := os.ReadFile(c.Cookie.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("cookie_secret_file: %w (%s)", err, secretHint)
		}
		cur = strings.TrimSpace(string(b))
	}
	if cur == "" {
		return nil, fmt.Errorf("cookie_secret: required (%s)", secretHint)
	}
	var out [][]byte
	if b, err := decodeSecret(cur); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	} else {
		out = append(out, b)
	}
	for i, p := range c.Cookie.Previous {
		if b, err := decodeSecret(p); err != nil {
			errs = append(errs, fmt.Errorf("cookie_secret_previous[%d]: %w", i, err))
		} else {
			out = append(out, b)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) < MinSecretBytes {
				return nil, fmt.Errorf("decodes to %d bytes, want at least %d (%s)", len(b), MinSecretBytes, secretHint)
			}
			return b, nil
		}
	}
	// Never echo the secret itself.
	return nil, fmt.Errorf("not valid base64 (%s)", secretHint)
}

// ParsePublicURL checks that s is an absolute http(s) URL with a host and
// nothing after it (a trailing / is allowed).
func ParsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q must be an absolute http(s) URL such as https://apps.example.com", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q must have no path, query, fragment or user (postern serves at the root of its host)", s)
	}
	u.Path = ""
	return u, nil
}

// DerivePublicURL is the public URL used when none is set: http:// and the
// address postern listens on, with an unspecified host read as localhost.
func DerivePublicURL(addr string) *url.URL {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &url.URL{Scheme: "http", Host: addr}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
}

// Store kinds ParseStore returns.
const (
	StoreFile  = "file"
	StoreRedis = "redis"
)

// ParseStore splits a store setting into its kind (StoreFile or StoreRedis)
// and target: the path for a file store, the whole URL for Redis.
func ParseStore(s string) (kind, target string, err error) {
	if path, ok := strings.CutPrefix(s, "file:"); ok {
		if path == "" {
			return "", "", errors.New(`"file:" needs a directory, e.g. file:/var/lib/postern`)
		}
		return StoreFile, path, nil
	}
	for _, scheme := range []string{"redis://", "rediss://", "redis-sentinel://", "rediss-sentinel://", "redis-cluster://", "rediss-cluster://"} {
		if strings.HasPrefix(s, scheme) {
			// The same parser Open uses, so check-config catches what
			// start-up would refuse.
			if err := redisstore.CheckURL(s); err != nil {
				return "", "", fmt.Errorf("%w (want e.g. redis://127.0.0.1:6379/0)", err)
			}
			return StoreRedis, s, nil
		}
	}
	return "", "", fmt.Errorf("%q: want file:PATH (a directory) or a redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster:// or rediss-cluster:// URL", redact(s))
}

// redact hides a password in a URL so messages never carry it, also in a
// URL too malformed to parse (everything between "://" and "@" goes).
func redact(s string) string {
	// Not url.Parse: a password holding '/', '?' or '#' makes it read the
	// password as part of the host or path.
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			return scheme + "://xxxxx@" + rest[at+1:]
		}
	}
	return s
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http(s) URL", redact(s))
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TrustedPrefixes parses TrustedProxies: each an IP address or a CIDR.
func (s Server) TrustedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for i, v := range s.TrustedProxies {
		v = strings.TrimSpace(v)
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(v); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		errs = append(errs, fmt.Errorf("entry %d (%q) is not an IP address or CIDR (e.g. 10.0.0.0/8)", i+1, v))
	}
	return out, errors.Join(errs...)
}

// maxStashBody bounds --stash-max-body: far above any form, far below
// what would overflow the store's size arithmetic.
const maxStashBody = 16 << 30

// validHostPort reports whether s is host:port with a port from 0 to 65535.
func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// checkPublicPath checks a public path prefix: an absolute path, nothing
// else (no scheme, host, query, fragment, dot segments or escapes), so what
// is public is exactly what the operator wrote.
func checkPublicPath(p string) error {
	const want = "want an absolute path prefix such as /webhooks"
	switch {
	case p == "":
		return fmt.Errorf("empty (%s)", want)
	case !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//"):
		return fmt.Errorf("%q is not a path (%s)", p, want)
	case strings.ContainsAny(p, "?#%\\ \t\r\n"):
		return fmt.Errorf("%q is not a plain path: no query, fragment, escapes, backslashes or spaces (%s)", p, want)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%q has a . or .. segment (%s)", p, want)
		}
	}
	return nil
}

// checkCookieDomain checks a cookie domain: a DNS name (a leading dot is
// allowed and ignored), no scheme, port, path or IP address.
func checkCookieDomain(d string) error {
	name := strings.TrimPrefix(d, ".")
	if name == "" || strings.ContainsAny(name, ":/?#@ \t") || net.ParseIP(name) != nil || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return fmt.Errorf("%q is not a domain name (want e.g. example.com: the hosts under it share the login)", d)
	}
	return nil
}

// Warnings are settings that are valid but probably not what the operator
// meant: check-config prints them and the gateway logs them at start.
func (c *Config) Warnings() []string {
	var w []string
	w = append(w, c.servingWarnings()...)
	if d := strings.ToLower(strings.TrimPrefix(c.Cookie.Domain, ".")); d != "" {
		pub, err := ParsePublicURL(c.Server.PublicURL)
		if c.Server.PublicURL == "" {
			pub, err = DerivePublicURL(c.Server.Listen), nil
		}
		if err == nil {
			if h := strings.ToLower(pub.Hostname()); h != d && !strings.HasSuffix(h, "."+d) {
				w = append(w, fmt.Sprintf("cookie_domain: %s does not cover the public URL's host %s, so the login there is not shared with the hosts under it", d, h))
			}
		}
	}
	for _, p := range c.PublicPaths {
		if p == "/" {
			w = append(w, "public_path: / makes the whole upstream public: nobody is asked to log in and no identity reaches it")
		}
	}
	for i, r := range c.Routes {
		if r.Public && (r.PathPrefix == "" || r.PathPrefix == "/") {
			host := r.Host
			if host == "" {
				host = "every host"
			}
			w = append(w, fmt.Sprintf("routes[%d] (%s line %d): public: true without a path_prefix makes all of %s public: nobody is asked to log in there",
				i, c.File, r.Line, host))
		}
	}
	return w
}
