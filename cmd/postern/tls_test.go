package main

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
)

// TestServeTLS runs the real binary with a certificate of a test CA: a
// client that verifies it gets HTTP/2; a renewed certificate, replaced on
// disk or written and announced with SIGHUP, is what the next handshake
// sees, without a restart; TLS 1.1 is refused.
func TestServeTLS(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.IssueFiles(t, dir, "first", "127.0.0.1")
	up := newRecorder(t)
	s := newSetup(t, up.URL, "file:"+filepath.Join(t.TempDir(), "store"))
	s.extraArgs = []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--public-url", "https://postern.test"}
	g := s.start(t)
	base := "https://" + strings.TrimPrefix(g.base, "http://")
	if !strings.Contains(g.out.String(), "tls=on") {
		t.Errorf("start-up line does not say tls=on:\n%s", g.out.String())
	}

	// served fetches healthz over a new connection and returns the
	// certificate's name and the protocol.
	served := func() (string, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(base + "/.postern/healthz")
		if err != nil {
			t.Fatalf("https client: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz over https: %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName, resp.Proto
	}
	if name, proto := served(); name != "first" || proto != "HTTP/2.0" {
		t.Fatalf("served %q over %s, want the first certificate over HTTP/2.0", name, proto)
	}
	waitForCert := func(want string) {
		t.Helper()
		if !waitFor(20*time.Second, func() bool { name, _ := served(); return name == want }) {
			name, _ := served()
			t.Fatalf("new handshakes still see %q, want %q:\n%s", name, want, g.out.String())
		}
	}

	// Renewal as certbot does it: new files renamed over the old ones.
	ca.IssueFiles(t, dir, "second", "127.0.0.1")
	waitForCert("second")
	if !strings.Contains(g.out.String(), `msg="reloaded tls_cert_file" setting=tls_cert_file trigger="file changed" result="subject \"second\"`) {
		t.Errorf("no reload line for the changed files:\n%s", g.out.String())
	}

	// Written in place and announced with SIGHUP.
	c, k := ca.Issue(t, "third", "127.0.0.1")
	if err := os.WriteFile(certFile, c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForCert("third")
	if !strings.Contains(g.out.String(), "trigger=SIGHUP result=\"subject \\\"third\\\"") {
		t.Errorf("no SIGHUP reload line for the third certificate:\n%s", g.out.String())
	}

	// A key that does not match: the certificate in use stays.
	_, other := ca.Issue(t, "other", "127.0.0.1")
	if err := os.WriteFile(keyFile, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return strings.Contains(g.out.String(), "does not match the certificate") }) {
		t.Fatalf("no error for a key that does not match:\n%s", g.out.String())
	}
	if name, _ := served(); name != "third" {
		t.Errorf("after a bad key, served %q, want the third certificate kept", name)
	}

	// TLS 1.1 is refused.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// Plain HTTP on the TLS port gets no page.
	if resp, err := http.Get(g.base + "/.postern/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP is served on the TLS listener")
		}
	}
	select {
	case <-g.exited:
		t.Fatalf("postern exited (%v):\n%s", g.err, g.out.String())
	default:
	}
}

// TestTLSKeyMismatchIsAConfigError: check-config and the gateway refuse a
// certificate with the key of another, naming the setting.
func TestTLSKeyMismatchIsAConfigError(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	certFile, _ := ca.IssueFiles(t, dir, "one", "127.0.0.1")
	_, other := ca.Issue(t, "two", "127.0.0.1")
	wrong := filepath.Join(dir, "wrong-key.pem")
	if err := os.WriteFile(wrong, other, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, "http://127.0.0.1:1", "file:"+filepath.Join(t.TempDir(), "store"))
	for _, sub := range [][]string{{"check-config"}, {}} {
		args := append(sub, "--listen", "127.0.0.1:0", "--upstream", s.upstream, "--store", s.store, "--cookie-secret", s.secret,
			"--htpasswd-file", s.htpasswd, "--tls-cert-file", certFile, "--tls-key-file", wrong)
		var out bytes.Buffer
		cmd := exec.Command(posternBinary(t), args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitConfig {
			t.Errorf("%v: exit %v, want %d:\n%s", sub, err, exitConfig, out.String())
		}
		if want := "tls_key_file: the key in " + wrong + " does not match the certificate in " + certFile; !strings.Contains(out.String(), want) {
			t.Errorf("%v: output lacks %q:\n%s", sub, want, out.String())
		}
	}
}
