// Command postern is an authentication gateway: a reverse proxy that sends
// browsers through a login and never loses a submission to it. See
// docs/configuration.md for its settings, or run "postern help".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/postern/postern/cmd/postern/internal/config"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version = ""

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the gateway failed while running
	exitConfig = 2 // bad settings or usage; the problems are on stderr
)

// env is what a command may touch of the process, so tests can run commands
// in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	cmd, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "":
		return runGateway(ctx, rest, e)
	case "demo":
		return runDemo(ctx, rest, e)
	case "hash-password":
		return runHashPassword(rest, e, hashPassword)
	case "check-config":
		return runCheckConfig(rest, e)
	case "version":
		fmt.Fprintln(e.stdout, "postern", buildVersion())
		return exitOK
	case "help":
		usage(e.stdout)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "postern: unknown command %q\n\n", cmd)
	usage(e.stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprint(w, `postern: an authentication gateway that never loses a submission to a login.

Usage:
  postern [flags]                      run the gateway
  postern demo [--listen ADDR]         everything on loopback, nothing to install
  postern hash-password [--user NAME] [--password-stdin]
                                       print an htpasswd line (bcrypt) for a user
  postern check-config --config FILE   validate the settings and exit (0 ok, 2 problems)
  postern version                      print the version
  postern help                         this text

Every flag is also an environment variable (POSTERN_ and the flag name in
upper snake case, e.g. POSTERN_COOKIE_SECRET) and a key in the YAML file given
by --config (the flag name in snake case, e.g. cookie_secret). A flag wins over
the environment, which wins over the file. See docs/configuration.md.

Flags:
`)
	fs := config.FlagSet("postern")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// loadConfig reads and validates the settings; it prints the problems and
// returns nil with the exit code when there are any.
func loadConfig(args []string, e env) (*config.Config, int) {
	cfg, err := config.Load(args, e.getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(e.stdout)
		return nil, exitOK
	}
	if cfg != nil {
		err = errors.Join(err, cfg.Validate())
	}
	if err != nil {
		printProblems(e.stderr, err)
		return nil, exitConfig
	}
	return cfg, exitOK
}

// printProblems writes every problem of a joined error on its own line.
func printProblems(w io.Writer, err error) {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		fmt.Fprintf(w, "postern: %s\n", lines[0])
		return
	}
	fmt.Fprintf(w, "postern: %d problems with the settings:\n", len(lines))
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// runCheckConfig validates the settings (the same flags, environment and file
// as running the gateway) and prints a one-line summary.
func runCheckConfig(args []string, e env) int {
	cfg, code := loadConfig(args, e)
	if cfg == nil {
		return code
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(e.stderr, "postern: warning: %s\n", w)
	}
	if err := cfg.CheckSockets(); err != nil {
		printProblems(e.stderr, err)
		return exitConfig
	}
	fmt.Fprintf(e.stdout, "config ok: %s\n", cfg.Summary())
	return exitOK
}
