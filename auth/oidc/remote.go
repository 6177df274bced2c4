package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// ErrUnavailable means the identity provider (discovery document, JWKS,
// token or userinfo endpoint) could not be reached or answered nonsense. It
// is the provider's fault, not the client's: a gateway answers 503.
var ErrUnavailable = errors.New("identity provider unavailable")

// Metadata is the part of the provider's discovery document postern uses.
type Metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
}

// Defaults for RemoteOptions.
const (
	DefaultRetryInterval      = 2 * time.Second
	DefaultKeyRefetchInterval = 5 * time.Minute
	DefaultHTTPTimeout        = 10 * time.Second
	keyRefreshInterval        = time.Hour
	maxDiscoveryBytes         = 1 << 20
)

// RemoteOptions tune a Remote. The zero value is usable.
type RemoteOptions struct {
	// HTTPClient fetches discovery and keys; http.DefaultClient if nil.
	HTTPClient *http.Client
	// Now is the clock for the retry back-off; time.Now if nil.
	Now func() time.Time
	// RetryInterval is the least time between two failed attempts to reach
	// the provider, so a provider that is down is not hammered.
	RetryInterval time.Duration
	// KeyRefetchInterval is the least time between two refetches of the
	// JWKS caused by a token with an unknown key id. A token with an unknown
	// kid that arrives sooner is refused without a fetch.
	KeyRefetchInterval time.Duration
	// Logger receives key refresh failures; slog.Default() if nil.
	Logger *slog.Logger
}

// Remote is an issuer seen from afar: its discovery document and its key set,
// fetched on first use and retried on later uses until they succeed. A
// provider that is down when the gateway starts therefore does not stop it.
// Once fetched, keys are refreshed hourly and on an unknown kid
// (rate-limited). Close ends the background refresh.
type Remote struct {
	issuer  string
	jwksURL string
	opts    RemoteOptions

	ctx    context.Context
	cancel context.CancelFunc

	state atomic.Pointer[remoteState]

	initMu  sync.Mutex // serialises fetch attempts
	lastTry time.Time
	lastErr error
}

type remoteState struct {
	meta Metadata
	keys keyfunc.Keyfunc
	stop context.CancelFunc // ends the key set's refresh; Close ends it too
}

// NewRemote describes the issuer; it does no network I/O. When jwksURL is
// empty, the key set's address comes from the issuer's discovery document;
// otherwise discovery is skipped and only the key set is fetched.
func NewRemote(issuer, jwksURL string, opts RemoteOptions) *Remote {
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.KeyRefetchInterval <= 0 {
		opts.KeyRefetchInterval = DefaultKeyRefetchInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Remote{issuer: issuer, jwksURL: jwksURL, opts: opts, ctx: ctx, cancel: cancel}
}

// Close stops the background key refresh. The Remote must not be used after.
func (r *Remote) Close() { r.cancel() }

// Ready reports whether discovery has succeeded and the key set was fetched,
// trying now if it has not (subject to the retry interval).
func (r *Remote) Ready(ctx context.Context) error {
	_, err := r.load(ctx)
	return err
}

// Metadata returns the discovery document, fetching it if needed. With an
// explicit JWKS URL and no discovery, only JWKSURI and Issuer are set.
func (r *Remote) Metadata(ctx context.Context) (Metadata, error) {
	st, err := r.load(ctx)
	if err != nil {
		return Metadata{}, err
	}
	return st.meta, nil
}

// Keyfunc returns the jwt.Keyfunc that looks keys up in the cached key set.
func (r *Remote) Keyfunc(ctx context.Context) (jwt.Keyfunc, error) {
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	return st.keys.KeyfuncCtx(ctx), nil
}

// cached returns the state if discovery already succeeded, without I/O.
func (r *Remote) cached() (Metadata, bool) {
	if st := r.state.Load(); st != nil {
		return st.meta, true
	}
	return Metadata{}, false
}

func (r *Remote) load(ctx context.Context) (*remoteState, error) {
	if st := r.state.Load(); st != nil {
		return st, nil
	}
	r.initMu.Lock()
	defer r.initMu.Unlock()
	if st := r.state.Load(); st != nil {
		return st, nil
	}
	now := r.opts.Now()
	if r.lastErr != nil && now.Sub(r.lastTry) < r.opts.RetryInterval {
		return nil, r.lastErr
	}
	r.lastTry = now
	st, err := r.fetch(ctx)
	if err != nil {
		r.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
		return nil, r.lastErr
	}
	r.lastErr = nil
	r.state.Store(st)
	return st, nil
}

func (r *Remote) fetch(ctx context.Context) (*remoteState, error) {
	meta := Metadata{Issuer: r.issuer, JWKSURI: r.jwksURL}
	if r.jwksURL == "" {
		var err error
		if meta, err = r.discover(ctx); err != nil {
			return nil, err
		}
	}
	keys, stop, err := r.keySet(meta.JWKSURI)
	if err != nil {
		return nil, err
	}
	return &remoteState{meta: meta, keys: keys, stop: stop}, nil
}

func (r *Remote) discover(ctx context.Context) (Metadata, error) {
	u := strings.TrimSuffix(r.issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Metadata{}, fmt.Errorf("discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.opts.HTTPClient.Do(req)
	if err != nil {
		return Metadata{}, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Metadata{}, fmt.Errorf("discovery: status %d from %s", resp.StatusCode, u)
	}
	var m Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDiscoveryBytes)).Decode(&m); err != nil {
		return Metadata{}, fmt.Errorf("discovery: decode %s: %w", u, err)
	}
	// As in OpenID Connect Discovery 1.0 section 4.3: the document must name
	// the issuer we asked, or tokens could be accepted from an impostor.
	if m.Issuer != r.issuer {
		return Metadata{}, fmt.Errorf("discovery: document names issuer %q, want %q", m.Issuer, r.issuer)
	}
	if m.JWKSURI == "" {
		return Metadata{}, fmt.Errorf("discovery: no jwks_uri in %s", u)
	}
	return m, nil
}

func (r *Remote) keySet(jwksURL string) (keyfunc.Keyfunc, context.CancelFunc, error) {
	// The storage's context bounds its refresh goroutine; a failed first
	// fetch must not leave that goroutine running.
	storeCtx, cancelStore := context.WithCancel(r.ctx)
	logger := r.opts.Logger
	store, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
		Client:          r.opts.HTTPClient,
		Ctx:             storeCtx,
		HTTPTimeout:     DefaultHTTPTimeout,
		RefreshInterval: keyRefreshInterval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			logger.WarnContext(ctx, "jwks refresh failed", "url", jwksURL, "error", err)
		},
	})
	if err != nil {
		cancelStore()
		return nil, nil, fmt.Errorf("jwks: %w", err)
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{jwksURL: store},
		// Waiting for the limiter is bounded by this; with a refetch
		// interval far longer than it, a second unknown kid within the
		// interval is refused at once instead of waiting.
		RateLimitWaitMax:  DefaultHTTPTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(r.opts.KeyRefetchInterval), 1),
	})
	if err != nil {
		cancelStore()
		return nil, nil, fmt.Errorf("jwks client: %w", err)
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: storeCtx, Storage: client})
	if err != nil {
		cancelStore()
		return nil, nil, fmt.Errorf("keyfunc: %w", err)
	}
	return kf, cancelStore, nil
}

// Key returns the public key the issuer's key set holds under kid now,
// refetching the set for an unknown kid as Keyfunc does (rate-limited), so
// a caller that remembers which key verified a token can tell whether that
// key is still the issuer's.
func (r *Remote) Key(ctx context.Context, kid string) (any, error) {
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	jwk, err := st.keys.Storage().KeyRead(ctx, kid)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", kid, err)
	}
	return jwk.Key(), nil
}
