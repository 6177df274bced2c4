package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/postern/postern/cmd/postern/internal/checkoutapp"
	"github.com/postern/postern/cmd/postern/internal/config"
)

const demoUser = "demo"

// runDemo runs the whole product on loopback: the demo shop as upstream, the
// gateway in front of it, a demo user with a random password, and the file
// store in a temporary folder removed on exit.
func runDemo(ctx context.Context, args []string, e env) int {
	fs := flag.NewFlagSet("postern demo", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	listenAddr := fs.String("listen", "127.0.0.1:8080", "loopback address to serve; 127.0.0.1:0 picks a free port")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "postern demo: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	}
	if err := loopbackOnly(*listenAddr); err != nil {
		fmt.Fprintf(e.stderr, "postern demo: %v\n", err)
		return exitConfig
	}
	if err := demo(ctx, *listenAddr, *logLevel, e); err != nil {
		fmt.Fprintf(e.stderr, "postern demo: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func demo(ctx context.Context, listenAddr, logLevel string, e env) error {
	dir, err := os.MkdirTemp("", "postern-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	password := rand.Text()
	line, err := hashPassword(demoUser, password)
	if err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	users := filepath.Join(dir, "users.htpasswd")
	if err := os.WriteFile(users, []byte(line+"\n"), 0o600); err != nil {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)

	logger := newLogger(e.stderr, config.Log{Level: logLevel, Format: "text"})

	// The shop listens on its own free loopback port; only the gateway is
	// meant to be visited.
	app := checkoutapp.New()
	appLn, err := listen("127.0.0.1:0", "shop")
	if err != nil {
		return err
	}
	appSrv := newServer(app, logger)
	go appSrv.Serve(appLn)
	defer appSrv.Close()

	// The demo goes through the same settings and checks as a real run,
	// ignoring the environment so no POSTERN_* variable leaks in.
	cfg, err := config.Load([]string{
		"--listen", listenAddr,
		"--admin-listen", "",
		"--upstream", "http://" + appLn.Addr().String(),
		"--cookie-secret", base64.StdEncoding.EncodeToString(key),
		"--htpasswd-file", users,
		"--store", "file:" + filepath.Join(dir, "store"),
		"--log-level", logLevel,
	}, func(string) string { return "" })
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return fmt.Errorf("demo settings: %w", err)
	}

	return serve(ctx, cfg, logger, wire, func(public *url.URL) {
		printDemoBanner(e.stdout, public, password, appLn.Addr().String(), dir)
	})
}

func printDemoBanner(w io.Writer, public *url.URL, password, shop, dir string) {
	base := public.String()
	fmt.Fprintf(w, `
postern demo is running.

  Open:      %[1]s/
  Log in as: %[2]s
  Password:  %[3]s

What to try:
  1. Open %[1]s/checkout and log in: you see the shop's order form.
  2. Let your session "expire" while you type: open %[1]s/.postern/logout
     in a second tab and log out there.
  3. Back in the first tab, fill in the order form and press "Place order".
     postern keeps your order and asks you to log in; log in, and the order
     is delivered: the page says "Order #1 received" and that the shop has
     received 1 order in total. Refresh it, or go Back: nothing is ordered again.
  4. From a terminal: curl -i -X POST %[1]s/api/orders -H 'Accept: application/json' \
       -d '{"item":"Green mug","quantity":1}'   (an API client gets 401, not a login page)

The shop itself listens on http://%[4]s; the data lives in %[5]s
and is removed when you stop the demo with Ctrl+C.
`, base, demoUser, password, shop, dir)
}

// loopbackOnly refuses demo addresses that other machines could reach.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q is not host:port (e.g. 127.0.0.1:8080)", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen %q: the demo serves on loopback only (e.g. 127.0.0.1:8080)", addr)
	}
	return nil
}
