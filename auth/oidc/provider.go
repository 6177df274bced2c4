package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/postern/postern/auth"
)

// ErrRejected means the provider refused a code or refresh token (wrong
// PKCE verifier, code already used or expired, revoked refresh token). The
// person should log in again; it is not a server fault.
var ErrRejected = errors.New("identity provider rejected the grant")

// Config is an OIDC client registration at one provider.
type Config struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document names it (for example https://id.example.com/realms/main).
	Issuer string
	// ClientID and ClientSecret are the client's credentials at the provider.
	ClientID     string
	ClientSecret string
	// RedirectURL is the gateway's callback, registered at the provider.
	RedirectURL string
	// Scopes requested at login; "openid email profile" if empty. Add
	// "offline_access" to receive refresh tokens from most providers.
	Scopes []string
	// GroupsClaim names the claim holding the person's groups; "groups" if
	// empty.
	GroupsClaim string
	// HTTPClient talks to the provider; http.DefaultClient if nil.
	HTTPClient *http.Client
	// Now is the clock for token lifetimes and retry back-off; time.Now if
	// nil.
	Now func() time.Time
}

// Validate reports every missing setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("oidc issuer: required (the provider's issuer URL)"))
	} else if u, err := url.Parse(c.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("oidc issuer: %q is not an absolute URL", c.Issuer))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("oidc client id: required"))
	}
	if c.RedirectURL == "" {
		errs = append(errs, errors.New("oidc redirect url: required (the gateway's /.postern/callback)"))
	}
	return errors.Join(errs...)
}

// Option tunes a Provider beyond its Config.
type Option func(*RemoteOptions)

// WithLogger sets the logger for background key refresh failures.
func WithLogger(l *slog.Logger) Option { return func(o *RemoteOptions) { o.Logger = l } }

// WithRetryInterval sets the least time between two attempts to reach a
// provider that failed (default DefaultRetryInterval).
func WithRetryInterval(d time.Duration) Option {
	return func(o *RemoteOptions) { o.RetryInterval = d }
}

// WithKeyRefetchInterval sets the least time between two JWKS refetches
// caused by unknown key ids (default DefaultKeyRefetchInterval).
func WithKeyRefetchInterval(d time.Duration) Option {
	return func(o *RemoteOptions) { o.KeyRefetchInterval = d }
}

// Tokens are what the provider handed out at login or refresh. They are
// secrets: never log them.
type Tokens struct {
	AccessToken  string
	RefreshToken string // empty if the provider issued none
	IDToken      string // raw, for EndSessionURL's id_token_hint
	Expiry       time.Time
}

// Provider logs people in at one OIDC provider with the authorization code
// flow (state, nonce and PKCE S256). It is safe for concurrent use.
type Provider struct {
	cfg    Config
	remote *Remote
}

// New prepares a Provider. It does no network I/O and never fails: the
// provider is discovered on first use and retried while unreachable. Check
// cfg.Validate before.
func New(cfg Config, opts ...Option) *Provider {
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"openid", "email", "profile"}
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ro := RemoteOptions{HTTPClient: cfg.HTTPClient, Now: cfg.Now}
	for _, o := range opts {
		o(&ro)
	}
	return &Provider{cfg: cfg, remote: NewRemote(cfg.Issuer, "", ro)}
}

// Close stops background key refreshes.
func (p *Provider) Close() { p.remote.Close() }

// Ready reports whether the provider has been discovered and its key set
// fetched, trying now if not. Errors wrap ErrUnavailable.
func (p *Provider) Ready(ctx context.Context) error { return p.remote.Ready(ctx) }

func (p *Provider) oauth2Config(m Metadata) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret,
		RedirectURL:  p.cfg.RedirectURL,
		Scopes:       p.cfg.Scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:  m.AuthorizationEndpoint,
			TokenURL: m.TokenEndpoint,
		},
	}
}

// AuthCodeURL returns the provider URL to send the browser to. state and
// nonce must be unguessable and remembered by the caller; verifier is a PKCE
// verifier from oauth2.GenerateVerifier, sent as its S256 challenge.
func (p *Provider) AuthCodeURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	if state == "" || nonce == "" || verifier == "" {
		return "", errors.New("auth code url: state, nonce and verifier are required")
	}
	m, err := p.remote.Metadata(ctx)
	if err != nil {
		return "", err
	}
	if m.AuthorizationEndpoint == "" {
		return "", fmt.Errorf("%w: no authorization_endpoint", ErrUnavailable)
	}
	return p.oauth2Config(m).AuthCodeURL(state,
		oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", nonce)), nil
}

// Exchange redeems the code from the callback with the PKCE verifier, checks
// the ID token (signature, iss, aud, azp, exp, iat and nonce) and returns who
// logged in. Claims missing from the ID token are taken from the userinfo
// endpoint. Errors wrap ErrRejected, ErrInvalidToken or ErrUnavailable.
func (p *Provider) Exchange(ctx context.Context, code, verifier, nonce string) (auth.Identity, Tokens, error) {
	if nonce == "" {
		return auth.Identity{}, Tokens{}, fmt.Errorf("%w: empty nonce", ErrInvalidToken)
	}
	m, err := p.remote.Metadata(ctx)
	if err != nil {
		return auth.Identity{}, Tokens{}, err
	}
	tok, err := p.oauth2Config(m).Exchange(p.clientCtx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return auth.Identity{}, Tokens{}, grantError("code exchange", err)
	}
	return p.identify(ctx, m, tok, nonce, true)
}

// Refresh redeems a refresh token for fresh tokens and returns the identity
// they describe (from the new ID token if one came, else from userinfo).
// The caller should check the Subject is unchanged. If the provider issues
// no new refresh token, the old one is returned in Tokens.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (auth.Identity, Tokens, error) {
	m, err := p.remote.Metadata(ctx)
	if err != nil {
		return auth.Identity{}, Tokens{}, err
	}
	src := p.oauth2Config(m).TokenSource(p.clientCtx(ctx), &oauth2.Token{RefreshToken: refreshToken})
	tok, err := src.Token()
	if err != nil {
		return auth.Identity{}, Tokens{}, grantError("refresh", err)
	}
	return p.identify(ctx, m, tok, "", false)
}

// EndSessionURL returns the provider's logout URL (RP-initiated logout),
// and false if the provider has not been discovered yet or has no
// end_session_endpoint.
func (p *Provider) EndSessionURL(idTokenHint, postLogoutRedirect string) (string, bool) {
	m, ok := p.remote.cached()
	if !ok || m.EndSessionEndpoint == "" {
		return "", false
	}
	u, err := url.Parse(m.EndSessionEndpoint)
	if err != nil {
		return "", false
	}
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	if idTokenHint != "" {
		q.Set("id_token_hint", idTokenHint)
	}
	if postLogoutRedirect != "" {
		q.Set("post_logout_redirect_uri", postLogoutRedirect)
	}
	u.RawQuery = q.Encode()
	return u.String(), true
}

func (p *Provider) clientCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.cfg.HTTPClient)
}

// identify turns a token response into an identity. At login an ID token is
// required and its nonce checked; at refresh it is optional.
func (p *Provider) identify(ctx context.Context, m Metadata, tok *oauth2.Token, nonce string, login bool) (auth.Identity, Tokens, error) {
	tokens := Tokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	rawID, _ := tok.Extra("id_token").(string)
	tokens.IDToken = rawID
	var claims map[string]any
	if rawID != "" {
		keys, err := p.remote.Keyfunc(ctx)
		if err != nil {
			return auth.Identity{}, Tokens{}, err
		}
		claims, err = VerifyJWT(rawID, keys, Expect{
			Issuer:          m.Issuer,
			Audience:        p.cfg.ClientID,
			AuthorizedParty: true,
			Nonce:           nonce,
			Now:             p.cfg.Now,
		})
		if err != nil {
			return auth.Identity{}, Tokens{}, fmt.Errorf("id token: %w", err)
		}
	} else if login {
		return auth.Identity{}, Tokens{}, fmt.Errorf("%w: no id_token in token response", ErrInvalidToken)
	}
	if claims == nil || p.missingClaims(claims) {
		var err error
		if claims, err = p.mergeUserinfo(ctx, m, tok, claims); err != nil {
			return auth.Identity{}, Tokens{}, err
		}
	}
	return IdentityFromClaims(claims, p.cfg.GroupsClaim), tokens, nil
}

func (p *Provider) missingClaims(claims map[string]any) bool {
	for _, c := range []string{"preferred_username", "email", p.cfg.GroupsClaim} {
		if _, ok := claims[c]; !ok {
			return true
		}
	}
	return false
}

const maxUserinfoBytes = 1 << 20

// mergeUserinfo fills claims absent from the ID token from the userinfo
// endpoint. Without an ID token (claims nil) the userinfo answer is the
// whole identity. A sub that differs from the ID token's is an error
// (OpenID Connect Core 1.0, section 5.3.2).
func (p *Provider) mergeUserinfo(ctx context.Context, m Metadata, tok *oauth2.Token, claims map[string]any) (map[string]any, error) {
	if m.UserinfoEndpoint == "" || tok.AccessToken == "" {
		if claims == nil {
			return nil, fmt.Errorf("%w: no id token and no userinfo endpoint", ErrInvalidToken)
		}
		return claims, nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.UserinfoEndpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: userinfo request: %w", ErrUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: userinfo: status %d", ErrUnavailable, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return nil, fmt.Errorf("%w: userinfo: content type %q is not supported", ErrUnavailable, ct)
	}
	var info map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxUserinfoBytes)).Decode(&info); err != nil {
		return nil, fmt.Errorf("%w: userinfo: decode: %w", ErrUnavailable, err)
	}
	infoSub, _ := info["sub"].(string)
	if infoSub == "" {
		return nil, fmt.Errorf("%w: userinfo has no sub", ErrInvalidToken)
	}
	if claims == nil {
		return info, nil
	}
	if sub, _ := claims["sub"].(string); sub != infoSub {
		return nil, fmt.Errorf("%w: userinfo sub differs from id token sub", ErrInvalidToken)
	}
	merged := make(map[string]any, len(claims)+len(info))
	for k, v := range info {
		merged[k] = v
	}
	for k, v := range claims { // the signed ID token wins
		merged[k] = v
	}
	return merged, nil
}

// grantError classifies a token endpoint failure: an OAuth error answer is
// the provider refusing the grant; anything else is the provider being
// unreachable.
func grantError(what string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		return fmt.Errorf("%w: %s: %s", ErrRejected, what, re.ErrorCode)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}
