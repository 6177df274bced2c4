package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/postern/postern/auth"
	"github.com/postern/postern/auth/assertion"
	"github.com/postern/postern/auth/bearer"
	"github.com/postern/postern/auth/oidc"
	"github.com/postern/postern/cmd/postern/internal/config"
	"github.com/postern/postern/gateway"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/filestore"
	"github.com/postern/postern/session/redisstore"
)

// wire turns a valid Config into the gateway: the one place where settings
// become gateway.Options and the parts it is made of.
func wire(ctx context.Context, cfg *config.Config, public *url.URL, logger *slog.Logger) (built, error) {
	secrets, err := cfg.CookieSecrets()
	if err != nil {
		return built{}, err
	}
	trusted, err := cfg.Server.TrustedPrefixes()
	if err != nil {
		return built{}, fmt.Errorf("trusted_proxy: %w", err)
	}
	routes, err := gatewayRoutes(cfg)
	if err != nil {
		return built{}, err
	}

	sealer, err := session.NewSealer(secrets)
	if err != nil {
		return built{}, fmt.Errorf("cookie_secret: %w", err)
	}
	cookies, err := session.NewCookies(session.CookieOptions{
		Secrets: secrets,
		Secure:  public.Scheme == "https",
		Domain:  cfg.Cookie.Domain,
		// The cookie must outlive the longest login it carries.
		MaxAge: max(cfg.SessionTTL, 7*24*time.Hour),
	})
	if err != nil {
		return built{}, fmt.Errorf("cookies: %w", err)
	}

	parts := gateway.Parts{
		Cookies:   cookies,
		Logger:    logger,
		Transport: gateway.NewTransport(),
		Now:       time.Now,
	}
	var reload []reloadable
	if cfg.HtpasswdFile != "" {
		users, err := auth.OpenHtpasswdFile(cfg.HtpasswdFile)
		if err != nil {
			return built{}, fmt.Errorf("htpasswd_file: %w", err)
		}
		parts.Passwords = users
		reload = append(reload, reloadable{setting: "htpasswd_file", files: []string{cfg.HtpasswdFile},
			reload: func() (string, error) {
				n, err := users.Reload()
				return fmt.Sprintf("%d users", n), err
			}})
	}

	var closers []func()
	var ready []func(context.Context) error
	if cfg.OIDC.Issuer != "" {
		secret, err := cfg.OIDC.Secret()
		if err != nil {
			return built{}, err
		}
		prov := oidc.New(oidc.Config{
			Issuer: cfg.OIDC.Issuer, ClientID: cfg.OIDC.ClientID, ClientSecret: secret,
			RedirectURL: public.JoinPath("/.postern/callback").String(),
			Scopes:      cfg.OIDC.Scopes, GroupsClaim: cfg.OIDC.GroupsClaim,
		}, oidc.WithLogger(logger))
		parts.OIDC = prov
		closers = append(closers, prov.Close)
		ready = append(ready, prov.Ready)
	}
	if cfg.JWT.Issuer != "" {
		v := bearer.New(bearer.Config{Issuer: cfg.JWT.Issuer, Audience: cfg.JWT.Audience,
			JWKSURL: cfg.JWT.JWKSURL, GroupsClaim: cfg.OIDC.GroupsClaim})
		parts.Bearer = v
		closers = append(closers, v.Close)
		ready = append(ready, v.Ready)
	}
	if cfg.SignAssertion {
		s, err := assertion.NewSigner(public.String(), time.Now)
		if err != nil {
			return built{}, fmt.Errorf("sign_assertion: %w", err)
		}
		parts.Assertion = s
	}
	parts.Ready = func(ctx context.Context) error {
		for _, f := range ready {
			if err := f(ctx); err != nil {
				return err
			}
		}
		return nil
	}

	backend, err := openBackend(ctx, cfg.Store, logger)
	if err != nil {
		return built{}, err
	}
	parts.Store = session.NewStore(backend, sealer)
	parts.Limiter = loginLimiter(parts.Store)

	gw, err := gateway.New(gateway.Options{
		PublicURL:               public,
		Routes:                  routes,
		StashMaxBody:            cfg.Stash.MaxBody,
		StashTTL:                cfg.Stash.TTL,
		StashMaxPending:         cfg.Stash.MaxPending,
		StoreBudget:             cfg.Stash.StoreBudget,
		SessionTTL:              cfg.SessionTTL,
		AllowCrossSiteStash:     cfg.Stash.CrossSite == "allow",
		PassAccessToken:         cfg.OIDC.PassAccessToken,
		TrustedProxies:          trusted,
		SkipAuthPreflight:       cfg.SkipAuthPreflight,
		BrandName:               cfg.Pages.BrandName,
		TemplatesDir:            cfg.Pages.TemplatesDir,
		StashMaxPerAddress:      cfg.Stash.MaxPerAddress,
		StashMaxBytesPerAddress: cfg.Stash.BytesPerAddress(),
		AccessLog:               cfg.Log.Access,
	}, parts)
	if err != nil {
		return built{}, errors.Join(fmt.Errorf("gateway: %w", err), backend.Close())
	}
	closeAll := func() error {
		for _, c := range closers {
			c()
		}
		return backend.Close()
	}
	return built{handler: gw, admin: gw.AdminHandler(), close: closeAll, reload: reload, drain: gw.Drain}, nil
}

// openBackend opens the store named by the store setting.
func openBackend(ctx context.Context, store string, logger *slog.Logger) (session.Backend, error) {
	kind, target, err := config.ParseStore(store)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	switch kind {
	case config.StoreFile:
		// PATH is a directory of the gateway's own, made if missing; the
		// database file inside it is locked by one process at a time.
		if err := os.MkdirAll(target, 0o700); err != nil {
			return nil, fmt.Errorf("store %s: %w", store, err)
		}
		b, err := filestore.Open(filepath.Join(target, "postern.db"), filestore.WithLogger(logger))
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", store, err)
		}
		return b, nil
	default:
		b, err := redisstore.Open(ctx, target)
		if err != nil {
			// The URL may hold a password: name only the kind.
			return nil, fmt.Errorf("store (redis): %w", err)
		}
		return b, nil
	}
}

// gatewayRoutes turns --upstream or the routes: list into gateway routes. A
// route without a policy or CA file of its own uses the global ones.
func gatewayRoutes(cfg *config.Config) ([]gateway.Route, error) {
	cas := map[string]*x509.CertPool{}
	pool := func(file string) (*x509.CertPool, error) {
		if file == "" {
			return nil, nil
		}
		if p, ok := cas[file]; ok {
			return p, nil
		}
		p, err := config.LoadCAPool(file)
		cas[file] = p
		return p, err
	}
	if cfg.Upstream != "" {
		u, err := url.Parse(cfg.Upstream)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		roots, err := pool(cfg.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream_ca_file: %w", err)
		}
		return []gateway.Route{{Upstream: u, RootCAs: roots, Policy: policy(cfg.Allow), PublicPaths: cfg.PublicPaths, IdempotentResend: cfg.IdempotentResend}}, nil
	}
	out := make([]gateway.Route, 0, len(cfg.Routes))
	for i, r := range cfg.Routes {
		u, err := url.Parse(r.Upstream)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]: upstream: %w", i, err)
		}
		allow := r.Allow
		if allow.IsZero() {
			allow = cfg.Allow
		}
		caFile, name := r.UpstreamCAFile, fmt.Sprintf("routes[%d]: upstream_ca_file", i)
		if caFile == "" {
			caFile, name = cfg.UpstreamCAFile, "upstream_ca_file"
		}
		roots, err := pool(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, gateway.Route{Host: r.Host, PathPrefix: r.PathPrefix, Upstream: u, RootCAs: roots, Policy: policy(allow), Public: r.Public, IdempotentResend: r.IdempotentResend})
	}
	return out, nil
}

func policy(a config.Allow) auth.Policy {
	return auth.Policy{Emails: a.Emails, Domains: a.Domains, Groups: a.Groups}
}

// loginLimiter limits failed local logins with counts kept in the store,
// so that every replica sharing it counts the same failures.
func loginLimiter(st *session.Store) *auth.LoginLimiter {
	w := auth.DefaultLoginWindow
	return auth.NewLoginLimiter(auth.LoginWindows{
		Address: st.Window("login-addr", w),
		Pair:    st.Window("login-pair", w),
		User:    st.Window("login-user", w),
	}, auth.DefaultLoginLimits, time.Now)
}
