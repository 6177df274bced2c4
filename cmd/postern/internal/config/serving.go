package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// validateServing checks how postern serves: TLS files and shutdown times.
func (c *Config) validateServing() []error {
	var errs []error
	s := c.Server
	switch {
	case s.TLSCertFile != "" && s.TLSKeyFile == "":
		errs = append(errs, errors.New("tls_key_file: required with tls_cert_file (the PEM private key of the certificate)"))
	case s.TLSCertFile == "" && s.TLSKeyFile != "":
		errs = append(errs, errors.New("tls_cert_file: required with tls_key_file (the PEM certificate of the key)"))
	case s.TLSCertFile != "":
		if _, err := LoadKeyPair(s.TLSCertFile, s.TLSKeyFile); err != nil {
			errs = append(errs, err)
		}
	}
	if s.ShutdownDelay < 0 {
		errs = append(errs, errors.New("shutdown_delay: must not be negative (e.g. 10s, or 0s for none)"))
	}
	if s.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout: must be positive (e.g. 30s)"))
	}
	if c.UpstreamCAFile != "" {
		if _, err := LoadCAPool(c.UpstreamCAFile); err != nil {
			errs = append(errs, fmt.Errorf("upstream_ca_file: %w", err))
		}
	}
	return errs
}

// servingWarnings are settings of serving that work but are likely wrong.
func (c *Config) servingWarnings() []string {
	if c.Server.TLSCertFile != "" && strings.HasPrefix(c.Server.PublicURL, "http://") {
		return []string{fmt.Sprintf("public_url: %s is http:// but postern serves HTTPS (tls_cert_file): browsers send https:// origins, so their submissions would be refused as cross-site and cookies are not Secure; use https://", c.Server.PublicURL)}
	}
	return nil
}

// LoadKeyPair reads the TLS certificate and key files; its errors name the
// setting at fault, e.g. a certificate that does not match its key.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls_cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls_key_file: %w", err)
	}
	if !hasPEM(certPEM, "CERTIFICATE") {
		return nil, fmt.Errorf("tls_cert_file: %s holds no PEM certificate (want a file with -----BEGIN CERTIFICATE-----)", certFile)
	}
	if !hasPEM(keyPEM, "PRIVATE KEY") {
		return nil, fmt.Errorf("tls_key_file: %s holds no PEM private key (want a file with -----BEGIN PRIVATE KEY----- or ... RSA/EC PRIVATE KEY)", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	switch {
	case err != nil && strings.Contains(err.Error(), "does not match"):
		return nil, fmt.Errorf("tls_key_file: the key in %s does not match the certificate in %s (tls_cert_file); give the key the certificate was issued for", keyFile, certFile)
	case err != nil:
		return nil, fmt.Errorf("tls_cert_file, tls_key_file: %s and %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

// hasPEM reports whether data holds a PEM block whose type ends in kind.
func hasPEM(data []byte, kind string) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, kind) {
			return true
		}
	}
}

// LoadCAPool returns the system's roots plus the PEM CA certificates in
// path, for https upstreams with a private CA.
func LoadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate (want the CA's certificate, -----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

// checkUpstream accepts an absolute http(s) URL or unix:///path/app.sock.
func checkUpstream(s string) error {
	if strings.HasPrefix(s, "unix:") {
		_, err := UnixSocketPath(s)
		return err
	}
	return checkHTTPURL(s)
}

// UnixSocketPath returns the socket path of a unix:///path/app.sock
// upstream.
func UnixSocketPath(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "unix" || u.Host != "" || !filepath.IsAbs(u.Path) || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: a unix socket upstream is unix:// and an absolute path, e.g. unix:///run/app/app.sock", s)
	}
	return filepath.Clean(u.Path), nil
}

// CheckSockets reports every unix socket upstream whose socket does not
// exist (or is not a socket). check-config refuses these; the gateway
// starts anyway (the app may start after it) and answers 502 until the
// socket is there.
func (c *Config) CheckSockets() error {
	check := func(name, upstream string) error {
		if !strings.HasPrefix(upstream, "unix:") {
			return nil
		}
		path, err := UnixSocketPath(upstream)
		if err != nil {
			return nil // Validate reports it
		}
		st, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s: the socket %s does not exist (is the app running, and is the path right?)", name, path)
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		case st.Mode()&fs.ModeSocket == 0:
			return fmt.Errorf("%s: %s is not a unix socket", name, path)
		}
		return nil
	}
	errs := []error{check("upstream", c.Upstream)}
	for i, r := range c.Routes {
		errs = append(errs, check(fmt.Sprintf("routes[%d] (%s line %d): upstream", i, c.File, r.Line), r.Upstream))
	}
	return errors.Join(errs...)
}
