package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/postern/postern/auth"
)

// hashPassword makes the htpasswd line; tests give runHashPassword their own.
func hashPassword(user, password string) (string, error) { return auth.HashPassword(user, password) }

// runHashPassword prints an htpasswd line (bcrypt) for a user. The username
// comes from --user or a prompt; the password from stdin with
// --password-stdin (or when stdin is not a terminal), else from a prompt
// without echo, asked twice.
func runHashPassword(args []string, e env, hash func(user, password string) (string, error)) int {
	fs := flag.NewFlagSet("postern hash-password", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	user := fs.String("user", "", "username (prompted for when empty)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "postern hash-password: unexpected argument %q (use --user NAME)\n", fs.Arg(0))
		return exitConfig
	}

	in := bufio.NewReader(e.stdin)
	tty := terminal(e.stdin)
	if *user == "" {
		fmt.Fprint(e.stderr, "Username: ")
		u, err := readLine(in)
		if err != nil {
			fmt.Fprintf(e.stderr, "postern hash-password: reading the username: %v\n", err)
			return exitFailed
		}
		*user = u
	}
	if *user == "" || strings.ContainsAny(*user, ":\r\n") {
		fmt.Fprintln(e.stderr, "postern hash-password: the username must be non-empty and contain no colon")
		return exitConfig
	}

	var password string
	if *fromStdin || tty == nil {
		p, err := readLine(in)
		if err != nil {
			fmt.Fprintf(e.stderr, "postern hash-password: reading the password: %v\n", err)
			return exitFailed
		}
		password = p
	} else {
		p, err := promptTwice(tty, e.stderr)
		if err != nil {
			fmt.Fprintf(e.stderr, "postern hash-password: %v\n", err)
			return exitFailed
		}
		password = p
	}
	if password == "" {
		fmt.Fprintln(e.stderr, "postern hash-password: the password is empty")
		return exitConfig
	}

	line, err := hash(*user, password)
	if err != nil {
		fmt.Fprintf(e.stderr, "postern hash-password: %v\n", err)
		return exitFailed
	}
	fmt.Fprintln(e.stdout, line)
	return exitOK
}

// terminal returns stdin as a file when it is a terminal, else nil.
func terminal(r io.Reader) *os.File {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

func promptTwice(tty *os.File, prompt io.Writer) (string, error) {
	fmt.Fprint(prompt, "Password: ")
	p1, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	fmt.Fprint(prompt, "Repeat password: ")
	p2, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if string(p1) != string(p2) {
		return "", errors.New("the passwords differ")
	}
	return string(p1), nil
}

// readLine reads one line without its line ending; a last line without one
// is fine.
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}
