package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/gateway/gatewaytest"
)

func TestValidateServing(t *testing.T) {
	ca := gatewaytest.NewCA(t)
	dir := t.TempDir()
	cert, key := ca.IssueFiles(t, dir, "one", "localhost")
	_, otherKey := ca.Issue(t, "two", "localhost")
	wrongKey := filepath.Join(dir, "other-key.pem")
	if err := os.WriteFile(wrongKey, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := writeFile(t, "ca.pem", string(ca.PEM))
	notPEM := writeFile(t, "not.pem", "hello\n")
	sock := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	t.Run("valid", func(t *testing.T) {
		c := valid(t)
		c.Server.TLSCertFile, c.Server.TLSKeyFile = cert, key
		c.UpstreamCAFile = caFile
		c.Upstream = "unix://" + sock
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := c.CheckSockets(); err != nil {
			t.Fatal(err)
		}
		if w := c.Warnings(); len(w) != 0 {
			t.Errorf("warnings: %v", w)
		}
		c.Server.PublicURL = "http://apps.example.com"
		if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "public_url: http://apps.example.com is http:// but postern serves HTTPS") {
			t.Errorf("no warning for an http public URL with TLS: %q", w)
		}
	})

	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"cert without key", func(c *Config) { c.Server.TLSCertFile = cert }, "tls_key_file: required"},
		{"key without cert", func(c *Config) { c.Server.TLSKeyFile = key }, "tls_cert_file: required"},
		{"key of another certificate", func(c *Config) { c.Server.TLSCertFile, c.Server.TLSKeyFile = cert, wrongKey },
			"tls_key_file: the key in " + wrongKey + " does not match the certificate in " + cert + " (tls_cert_file)"},
		{"missing cert", func(c *Config) { c.Server.TLSCertFile, c.Server.TLSKeyFile = "/nonexistent/c.pem", key }, "tls_cert_file: open /nonexistent/c.pem"},
		{"cert not PEM", func(c *Config) { c.Server.TLSCertFile, c.Server.TLSKeyFile = notPEM, key }, "tls_cert_file: " + notPEM + " holds no PEM certificate"},
		{"key is a certificate", func(c *Config) { c.Server.TLSCertFile, c.Server.TLSKeyFile = cert, cert }, "tls_key_file: " + cert + " holds no PEM private key"},
		{"negative delay", func(c *Config) { c.Server.ShutdownDelay = -1 }, "shutdown_delay:"},
		{"zero timeout", func(c *Config) { c.Server.ShutdownTimeout = 0 }, "shutdown_timeout:"},
		{"ca not PEM", func(c *Config) { c.UpstreamCAFile = notPEM }, "upstream_ca_file: " + notPEM + " holds no PEM certificate"},
		{"route ca missing", func(c *Config) {
			c.Upstream = ""
			c.Routes = []Route{{Upstream: "https://a.internal", UpstreamCAFile: "/nonexistent/ca.pem"}}
		}, "routes[0]"},
		{"relative socket", func(c *Config) { c.Upstream = "unix://app.sock" }, "upstream: \"unix://app.sock\": a unix socket upstream is unix:// and an absolute path"},
		{"socket with query", func(c *Config) { c.Upstream = "unix:///run/app.sock?x=1" }, "upstream:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.change(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v does not contain %q", err, tt.want)
			}
		})
	}

	t.Run("missing socket", func(t *testing.T) {
		c := valid(t)
		c.Upstream = "unix:///nonexistent/app.sock"
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate: %v (a missing socket is for CheckSockets)", err)
		}
		err := c.CheckSockets()
		if err == nil || !strings.Contains(err.Error(), "upstream: the socket /nonexistent/app.sock does not exist") {
			t.Errorf("CheckSockets: %v", err)
		}
		c.Upstream = "unix://" + caFile
		if err := c.CheckSockets(); err == nil || !strings.Contains(err.Error(), "is not a unix socket") {
			t.Errorf("CheckSockets of a plain file: %v", err)
		}
	})
}

func TestServingSettingsLoad(t *testing.T) {
	c, err := Load([]string{"--tls-cert-file=c.pem", "--tls-key-file=k.pem", "--shutdown-delay=5s", "--access-log=false", "--upstream-ca-file=ca.pem"},
		env(map[string]string{"POSTERN_SHUTDOWN_TIMEOUT": "1m"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.TLSCertFile != "c.pem" || c.Server.TLSKeyFile != "k.pem" || c.Server.ShutdownDelay.String() != "5s" ||
		c.Server.ShutdownTimeout.String() != "1m0s" || c.Log.Access || c.UpstreamCAFile != "ca.pem" {
		t.Errorf("loaded %+v %+v %q", c.Server, c.Log, c.UpstreamCAFile)
	}
	f := writeFile(t, "c.yaml", "routes:\n  - upstream: https://a.internal\n    upstream_ca_file: /etc/ca.pem\n")
	c, err = Load([]string{"--config=" + f}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 1 || c.Routes[0].UpstreamCAFile != "/etc/ca.pem" {
		t.Errorf("routes %+v", c.Routes)
	}
}
