package config

import (
	"fmt"
	"strings"
)

// Upstreams lists where requests go, for logs and summaries.
func (c *Config) Upstreams() []string {
	if c.Upstream != "" {
		return []string{redact(c.Upstream)}
	}
	out := make([]string, 0, len(c.Routes))
	for _, r := range c.Routes {
		out = append(out, fmt.Sprintf("%s%s -> %s", r.Host, r.PathPrefix, redact(r.Upstream)))
	}
	return out
}

// LoginMethods names the configured login methods ("htpasswd", "oidc").
func (c *Config) LoginMethods() []string {
	var m []string
	if c.HtpasswdFile != "" {
		m = append(m, "htpasswd")
	}
	if c.OIDC.Issuer != "" {
		m = append(m, "oidc")
	}
	return m
}

// Summary is a one-line description of a valid Config, free of secrets.
func (c *Config) Summary() string {
	kind, _, _ := ParseStore(c.Store)
	pub := c.Server.PublicURL
	if pub == "" {
		u := DerivePublicURL(c.Server.Listen)
		if c.Server.TLSCertFile != "" {
			u.Scheme = "https"
		}
		pub = u.String() + " (derived)"
	}
	return fmt.Sprintf("listen %s, public URL %s, upstreams [%s], login %s, store %s",
		c.Server.Listen, pub, strings.Join(c.Upstreams(), ", "), strings.Join(c.LoginMethods(), "+"), kind)
}
