package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/postern/postern/cmd/postern/internal/config"
	"github.com/redis/go-redis/v9"
)

// Server limits. Uploads may be large and slow, so reading a request may take
// minutes; its headers may not.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 5 * time.Minute
	writeTimeout      = 5 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// built is what wiring produces: the gateway, its admin handler, what to
// release on exit, the parts whose files are re-read while running, and
// what starts the drain at shutdown.
type built struct {
	handler http.Handler
	admin   http.Handler
	close   func() error
	reload  []reloadable
	// drain makes readyz answer 503 (nil: nothing to tell).
	drain func()
}

// builder turns a valid Config into handlers; wire in production.
type builder func(ctx context.Context, cfg *config.Config, public *url.URL, logger *slog.Logger) (built, error)

func runGateway(ctx context.Context, args []string, e env) int {
	cfg, code := loadConfig(args, e)
	if cfg == nil {
		return code
	}
	logger := newLogger(e.stderr, cfg.Log)
	// go-redis logs through a process-wide logger of its own; the process
	// is ours here, so its lines join postern's log in postern's format.
	redis.SetLogger(redisLog{logger})
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	if err := serve(ctx, cfg, logger, wire, nil); err != nil {
		logger.Error("postern stopped", "err", err)
		return exitFailed
	}
	return exitOK
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated: debug, info, warn, error
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve listens, builds the gateway, logs the start-up line, calls ready
// (when not nil) with the public URL, and serves until ctx is done; then it
// shuts down gracefully.
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, build builder, ready func(public *url.URL)) (err error) {
	ln, err := listen(cfg.Server.Listen, "--listen")
	if err != nil {
		return err
	}
	defer ln.Close()
	var cert *certificate
	if cfg.Server.TLSCertFile != "" {
		if cert, err = loadCertificate(cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile); err != nil {
			return err
		}
	}
	public := config.DerivePublicURL(ln.Addr().String())
	if cert != nil {
		public.Scheme = "https"
	}
	if cfg.Server.PublicURL != "" {
		if public, err = config.ParsePublicURL(cfg.Server.PublicURL); err != nil {
			return fmt.Errorf("public_url: %w", err)
		}
	}

	b, err := build(ctx, cfg, public, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
	}()

	if err := cfg.CheckSockets(); err != nil {
		// The app may start after the gateway: until its socket is there,
		// requests for it get a 502 page.
		logger.Warn("upstream socket missing; requests for it fail with 502 until it exists", "err", err)
	}

	gwSrv := newServer(b.handler, logger)
	tlsMode := "off"
	reload := b.reload
	if cert != nil {
		gwSrv.TLSConfig = cert.tlsConfig()
		tlsMode = "on"
		reload = append(reload, cert.reloadable())
	}
	servers := []served{{ln: ln, srv: gwSrv}}
	adminAddr := "off"
	if cfg.Server.AdminListen != "" {
		aln, err := listen(cfg.Server.AdminListen, "--admin-listen")
		if err != nil {
			return err
		}
		defer aln.Close()
		adminAddr = aln.Addr().String()
		servers = append(servers, served{ln: aln, srv: newServer(b.admin, logger)})
	}

	storeKind, _, _ := config.ParseStore(cfg.Store)
	// Never secrets here: no cookie secret, client secret or store password.
	logger.Info("postern started",
		"listen", ln.Addr().String(),
		"public_url", public.String(),
		"upstreams", cfg.Upstreams(),
		"store", storeKind,
		"login", cfg.LoginMethods(),
		"admin_listen", adminAddr,
		"tls", tlsMode,
		"access_log", cfg.Log.Access,
		"version", buildVersion())
	stopReload := startReloader(ctx, logger, reload)
	defer stopReload()
	if ready != nil {
		ready(public)
	}
	return runServers(ctx, logger, servers, shutdown{delay: cfg.Server.ShutdownDelay, timeout: cfg.Server.ShutdownTimeout, drain: b.drain})
}

type served struct {
	ln  net.Listener
	srv *http.Server
}

// shutdown says how the gateway stops on SIGTERM or SIGINT.
type shutdown struct {
	// delay is how long readyz answers 503 while everything else is still
	// served, before the listeners close.
	delay time.Duration
	// timeout is how long requests in flight get to finish after that.
	timeout time.Duration
	drain   func() // nil: no readiness to withdraw
}

// runServers serves until ctx is done or a server fails. Then it drains
// (readyz answers 503 for the delay, so load balancers stop sending), closes
// the listeners and lets requests in flight (replays among them) finish
// within the timeout; what is still running then is cut.
func runServers(ctx context.Context, logger *slog.Logger, servers []served, sd shutdown) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			if s.srv.TLSConfig != nil {
				// The certificate comes from TLSConfig.GetCertificate.
				errc <- s.srv.ServeTLS(s.ln, "", "")
				return
			}
			errc <- s.srv.Serve(s.ln)
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		if sd.drain != nil {
			sd.drain()
		}
		logger.Info("shutting down", "delay", sd.delay.String(), "grace", sd.timeout.String())
		if sd.delay > 0 {
			select {
			case <-time.After(sd.delay):
			case err = <-errc:
				err = fmt.Errorf("serve: %w", err)
			}
		}
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sd.timeout)
	defer cancel()
	for _, s := range servers {
		if serr := s.srv.Shutdown(sctx); serr != nil {
			// Cut what did not finish in time, rather than hang.
			_ = s.srv.Close()
			err = errors.Join(err, fmt.Errorf("shutdown: requests still running after %s were cut: %w", sd.timeout, serr))
		}
	}
	return err
}

func newServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// listen opens a TCP listener, explaining a busy address.
func listen(addr, flagName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s %s: the address is already in use by another program; choose another one, e.g. %s 127.0.0.1:0 for any free port", flagName, addr, flagName)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flagName, addr, err)
	}
	return ln, nil
}

// redisLog passes go-redis's own messages (reconnects, pool errors) to
// slog as warnings.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...))
}
