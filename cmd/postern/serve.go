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
	// shutdownTimeout is how long requests in flight get to finish after
	// SIGINT or SIGTERM.
	shutdownTimeout = 30 * time.Second
)

// built is what wiring produces: the gateway, its admin handler, and what
// to release on exit.
type built struct {
	handler http.Handler
	admin   http.Handler
	close   func() error
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
	public := config.DerivePublicURL(ln.Addr().String())
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

	servers := []served{{ln: ln, srv: newServer(b.handler, logger)}}
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
		"version", buildVersion())
	if ready != nil {
		ready(public)
	}
	return runServers(ctx, logger, servers)
}

type served struct {
	ln  net.Listener
	srv *http.Server
}

// runServers serves until ctx is done or a server fails, then shuts all of
// them down, letting requests in flight finish within shutdownTimeout.
func runServers(ctx context.Context, logger *slog.Logger, servers []served) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.srv.Serve(s.ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace", shutdownTimeout.String())
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		if serr := s.srv.Shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutdown: %w", serr))
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
