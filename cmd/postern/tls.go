package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postern/postern/cmd/postern/internal/config"
)

// certificate is the TLS certificate of --tls-cert-file and --tls-key-file.
// Handshakes read the current one, so a renewed certificate is served from
// the next handshake on, without a restart.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// loadCertificate reads the certificate and its key; a certificate that does
// not match its key is an error naming the setting.
func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile}
	if _, err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload re-reads both files. On an error (a renewer that has written the
// new certificate but not yet its key, say) the current pair stays.
func (c *certificate) reload() (string, error) {
	pair, err := config.LoadKeyPair(c.certFile, c.keyFile)
	if err != nil {
		return "", err
	}
	if pair.Leaf == nil && len(pair.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
			pair.Leaf = leaf
		}
	}
	c.cur.Store(pair)
	return describeCertificate(pair), nil
}

// tlsConfig is how the gateway serves TLS: TLS 1.2 at least, Go's default
// cipher suites (forward-secret AEADs only) and curves, HTTP/2 and HTTP/1.1.
func (c *certificate) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// reloadable is the certificate as a part the reloader re-reads.
func (c *certificate) reloadable() reloadable {
	return reloadable{setting: "tls_cert_file", files: []string{c.certFile, c.keyFile}, reload: c.reload}
}

// describeCertificate names a certificate for the log: its subject, names
// and expiry (no key material, nothing secret).
func describeCertificate(pair *tls.Certificate) string {
	leaf := pair.Leaf
	if leaf == nil {
		return "certificate"
	}
	names := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	s := fmt.Sprintf("subject %q, names [%s], expires %s", leaf.Subject.CommonName, strings.Join(names, " "), leaf.NotAfter.UTC().Format(time.RFC3339))
	if time.Now().After(leaf.NotAfter) {
		s += " (EXPIRED: browsers will refuse it)"
	}
	return s
}
