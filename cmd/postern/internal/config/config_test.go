package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content into a file in a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func secret(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:8080" || c.Server.AdminListen != "127.0.0.1:9090" {
		t.Errorf("listen %q admin %q", c.Server.Listen, c.Server.AdminListen)
	}
	if c.Stash.MaxBody != 10<<20 || c.Stash.TTL != 10*time.Minute || c.Stash.CrossSite != "reject" {
		t.Errorf("stash %+v", c.Stash)
	}
	if c.Store != "file:./postern-data" || c.SessionTTL != 12*time.Hour {
		t.Errorf("store %q session ttl %v", c.Store, c.SessionTTL)
	}
	if !slices.Equal(c.OIDC.Scopes, []string{"openid", "email", "profile"}) || c.OIDC.GroupsClaim != "groups" {
		t.Errorf("oidc %+v", c.OIDC)
	}
	if c.Log != (Log{Level: "info", Format: "text", Access: true}) || c.OIDC.PassAccessToken {
		t.Errorf("log %+v pass %v", c.Log, c.OIDC.PassAccessToken)
	}
	if c.Server.ShutdownDelay != 0 || c.Server.ShutdownTimeout != 30*time.Second || c.Server.TLSCertFile != "" {
		t.Errorf("server %+v", c.Server)
	}
}

func TestPrecedence(t *testing.T) {
	type layers struct {
		file, env string // "" means not set by that layer
		flag      []string
	}
	tests := []struct {
		name string
		in   layers
		want int64
	}{
		{"default", layers{}, 10 << 20},
		{"file over default", layers{file: "1KiB"}, 1 << 10},
		{"env over file", layers{file: "1KiB", env: "2KiB"}, 2 << 10},
		{"flag over env and file", layers{file: "1KiB", env: "2KiB", flag: []string{"--stash-max-body=3KiB"}}, 3 << 10},
		{"flag over file", layers{file: "1KiB", flag: []string{"--stash-max-body", "4KiB"}}, 4 << 10},
		{"env over default", layers{env: "5KiB"}, 5 << 10},
		{"last repeated flag wins", layers{flag: []string{"--stash-max-body=1", "--stash-max-body=6"}}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.in.flag
			if tt.in.file != "" {
				args = append([]string{"--config", writeFile(t, "c.yaml", "stash_max_body: "+tt.in.file+"\n")}, args...)
			}
			e := map[string]string{}
			if tt.in.env != "" {
				e["POSTERN_STASH_MAX_BODY"] = tt.in.env
			}
			c, err := Load(args, env(e))
			if err != nil {
				t.Fatal(err)
			}
			if c.Stash.MaxBody != tt.want {
				t.Errorf("stash max body = %d, want %d", c.Stash.MaxBody, tt.want)
			}
		})
	}
}

func TestListPrecedenceReplacesLowerLayers(t *testing.T) {
	file := writeFile(t, "c.yaml", "allow_email:\n  - a@x.org\n  - b@x.org\nallow_domain: x.org\n")
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		emails []string
	}{
		{"file list", nil, nil, []string{"a@x.org", "b@x.org"}},
		{"env comma list", nil, map[string]string{"POSTERN_ALLOW_EMAIL": "c@x.org, d@x.org"}, []string{"c@x.org", "d@x.org"}},
		{"repeated flags", []string{"--allow-email=e@x.org", "--allow-email=f@x.org"}, map[string]string{"POSTERN_ALLOW_EMAIL": "c@x.org"}, []string{"e@x.org", "f@x.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(append([]string{"--config=" + file}, tt.args...), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Allow.Emails, tt.emails) {
				t.Errorf("emails = %q, want %q", c.Allow.Emails, tt.emails)
			}
			if !slices.Equal(c.Allow.Domains, []string{"x.org"}) {
				t.Errorf("a single YAML string for a list: domains = %q", c.Allow.Domains)
			}
		})
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	file := writeFile(t, "c.yaml", "listen: 127.0.0.1:1234\n")
	c, err := Load(nil, env(map[string]string{"POSTERN_CONFIG": file}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:1234" || c.File != file {
		t.Errorf("listen %q file %q", c.Server.Listen, c.File)
	}
}

func TestUnknownKeysAreErrorsNamingKeyAndLine(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"top level", "listen: 127.0.0.1:1\nstash_max_bdy: 1MiB\n", []string{`c.yaml:2: unknown key "stash_max_bdy"`}},
		{"hyphen hint", "stash-max-body: 1MiB\n", []string{`unknown key "stash-max-body"`, "did you mean stash_max_body"}},
		{"in a route", "routes:\n  - upstream: http://a\n    hots: a.example\n", []string{`c.yaml:3: routes: unknown key "hots"`}},
		{"config inside config", "config: other.yaml\n", []string{"config: cannot be set inside the config file"}},
		{"two at once", "a: 1\nb: 2\n", []string{`unknown key "a"`, `unknown key "b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]string{"--config", writeFile(t, "c.yaml", tt.yaml)}, env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestBadValuesNameTheirSource(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want []string
	}{
		{name: "flag size", args: []string{"--stash-max-body=10XB"}, want: []string{"--stash-max-body", `"10XB"`, "MiB"}},
		{name: "env duration", env: map[string]string{"POSTERN_STASH_TTL": "soon"}, want: []string{"POSTERN_STASH_TTL", `"soon" is not a duration`}},
		{name: "file enum", yaml: "cross_site_stash: maybe\n", want: []string{"c.yaml:1: cross_site_stash", "reject, allow"}},
		{name: "file bool", yaml: "\npass_access_token: perhaps\n", want: []string{"c.yaml:2: pass_access_token", "true or false"}},
		{name: "list for a single value", yaml: "listen: [a, b]\n", want: []string{"c.yaml:1: listen", "single value"}},
		{name: "log format", args: []string{"--log-format=xml"}, want: []string{"--log-format", "text, json"}},
		{name: "empty list item", args: []string{"--allow-group="}, want: []string{"--allow-group", "empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" {
				args = append(args, "--config", writeFile(t, "c.yaml", tt.yaml))
			}
			c, err := Load(args, env(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			if c == nil {
				t.Fatal("config not returned with a value error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadReportsEveryBadValue(t *testing.T) {
	file := writeFile(t, "c.yaml", "log_level: loud\nnope: 1\n")
	_, err := Load([]string{"--config", file, "--stash-ttl=x"}, env(map[string]string{"POSTERN_STASH_MAX_BODY": "big"}))
	for _, w := range []string{"log_level", "nope", "--stash-ttl", "POSTERN_STASH_MAX_BODY"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %s", err, w)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	if _, err := Load([]string{"--no-such-flag"}, env(nil)); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("unknown flag: %v", err)
	}
	if _, err := Load([]string{"stray"}, env(nil)); err == nil || !strings.Contains(err.Error(), "stray") {
		t.Errorf("stray argument: %v", err)
	}
	if _, err := Load([]string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	c, err := Load([]string{"--pass-access-token"}, env(nil))
	if err != nil || !c.OIDC.PassAccessToken {
		t.Errorf("bare boolean flag: %v %v", c, err)
	}
}

// valid returns a Config that passes Validate.
func valid(t *testing.T) *Config {
	t.Helper()
	users := writeFile(t, "users", "demo:$2y$10$abcdefghijklmnopqrstuu0123456789012345678901234567890\n")
	c, err := Load([]string{
		"--upstream=http://127.0.0.1:3000",
		"--cookie-secret=" + secret(32),
		"--htpasswd-file=" + users,
	}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	return c
}

func TestValidateAcceptsValidConfigs(t *testing.T) {
	c := valid(t)
	c.Cookie.Previous = []string{secret(40)}
	c.Upstream = ""
	c.Routes = []Route{{Host: "a.example", PathPrefix: "/x", Upstream: "https://a:1", Allow: Allow{Domains: []string{"example.com"}}}}
	c.HtpasswdFile = ""
	c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecret = "https://id.example.com", "postern", "s"
	c.JWT = JWT{Issuer: "https://id.example.com", Audience: "api"}
	c.Store = "redis-sentinel://:pw@10.0.0.1:26379/0?master=m"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	secrets, err := c.CookieSecrets()
	if err != nil || len(secrets) != 2 || len(secrets[1]) != 40 {
		t.Errorf("secrets: %d %v", len(secrets), err)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := &Config{
		Server:   Server{Listen: "nope", AdminListen: "also-nope", PublicURL: "https://x.example/app"},
		Upstream: "ftp://x",
		Routes:   []Route{{Upstream: "", PathPrefix: "api", Host: "a:80"}},
		Cookie:   Cookie{Secret: secret(16), Previous: []string{"!!!"}},
		OIDC:     OIDC{ClientID: "x", Scopes: []string{"email"}},
		JWT:      JWT{Audience: "api"},
		Allow:    Allow{Emails: []string{"nobody"}, Domains: []string{"@example.com"}},
		Store:    "memory:",
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		"listen:", "admin_listen:", "public_url:", "upstream: cannot be combined with routes",
		"routes[0]", "upstream: required", "path_prefix", "host:",
		"cookie_secret: decodes to 16 bytes", "head -c 32 /dev/urandom | base64", "cookie_secret_previous[0]: not valid base64",
		"oidc_issuer:", "oidc_scopes: must include openid", "oidc_groups_claim",
		"jwt_issuer:", "allow: --allow-email entry 1", "--allow-domain entry 1", "store:",
		"stash_max_body:", "stash_ttl:", "session_ttl:",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not report %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), secret(16)) {
		t.Error("error message contains the secret")
	}
}

func TestValidateSingleProblems(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"no upstream", func(c *Config) { c.Upstream = "" }, "upstream: required"},
		{"no secret", func(c *Config) { c.Cookie.Secret = "" }, "cookie_secret: required (generate one with: head -c 32 /dev/urandom | base64)"},
		{"secret and file", func(c *Config) { c.Cookie.SecretFile = "x" }, "not both"},
		{"missing secret file", func(c *Config) { c.Cookie.Secret, c.Cookie.SecretFile = "", "/nonexistent/s" }, "cookie_secret_file:"},
		{"no login", func(c *Config) { c.HtpasswdFile = "" }, "login: no login method"},
		{"missing htpasswd", func(c *Config) { c.HtpasswdFile = "/nonexistent/users" }, "htpasswd_file:"},
		{"oidc without client id", func(c *Config) { c.OIDC.Issuer = "https://id.example.com" }, "oidc_client_id: required"},
		{"oidc http issuer", func(c *Config) { c.OIDC.Issuer, c.OIDC.ClientID = "http://id.example.com", "c" }, "must be https"},
		{"oidc secret alone", func(c *Config) { c.OIDC.ClientSecret = "s" }, "oidc_client_secret: set only with"},
		{"jwt without audience", func(c *Config) { c.JWT.Issuer = "https://id.example.com" }, "jwt_audience: required"},
		{"public url with query", func(c *Config) { c.Server.PublicURL = "https://a.example?x=1" }, "public_url:"},
		{"empty file store", func(c *Config) { c.Store = "file:" }, "store:"},
		{"redis password not echoed", func(c *Config) { c.Store = "redis://:hunter2@" }, "store:"},
		{"malformed redis password not echoed", func(c *Config) { c.Store = "redis://:hunter2%zz@127.0.0.1:6379/0" }, "store:"},
		{"unknown redis option", func(c *Config) { c.Store = "redis://127.0.0.1:6379/0?bogus_opt=1" }, "bogus_opt"},
		{"sentinel without master", func(c *Config) { c.Store = "redis-sentinel://127.0.0.1:26379/0" }, "master"},
		{"htpasswd without users", func(c *Config) {
			p := filepath.Join(t.TempDir(), "empty.htpasswd")
			_ = os.WriteFile(p, []byte("# nobody\n"), 0o600)
			c.HtpasswdFile = p
		}, "has no users"},
		{"htpasswd not bcrypt", func(c *Config) {
			p := filepath.Join(t.TempDir(), "sha.htpasswd")
			_ = os.WriteFile(p, []byte("bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"), 0o600)
			c.HtpasswdFile = p
		}, "bcrypt"},
		{"zero stash", func(c *Config) { c.Stash.MaxBody = 0 }, "stash_max_body:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.change(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v does not contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Error("error contains a password")
			}
		})
	}
}

func TestPublicURL(t *testing.T) {
	for _, ok := range []string{"https://apps.example.com", "http://127.0.0.1:8080/", "https://a.example:8443"} {
		if _, err := ParsePublicURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"apps.example.com", "/path", "ftp://a", "https://a/b", "https://a?q", "https://a#f", "https://u:p@a"} {
		if _, err := ParsePublicURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		":8080":          "http://localhost:8080",
		"0.0.0.0:80":     "http://localhost:80",
		"[::]:9":         "http://localhost:9",
		"[::1]:9":        "http://[::1]:9",
	} {
		if got := DerivePublicURL(addr).String(); got != want {
			t.Errorf("DerivePublicURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestParseStore(t *testing.T) {
	tests := []struct{ in, kind, target string }{
		{"file:./postern-data", StoreFile, "./postern-data"},
		{"file:/var/lib/postern", StoreFile, "/var/lib/postern"},
		{"redis://127.0.0.1:6379/0", StoreRedis, "redis://127.0.0.1:6379/0"},
		{"rediss://r.example:6380/1", StoreRedis, "rediss://r.example:6380/1"},
		{"redis-cluster://a:1,b:2", StoreRedis, "redis-cluster://a:1,b:2"},
		{"redis-sentinel://a:26379/0?master=m", StoreRedis, "redis-sentinel://a:26379/0?master=m"},
		{"rediss-sentinel://a:26379/0?master=m", StoreRedis, "rediss-sentinel://a:26379/0?master=m"},
		{"rediss-cluster://a:1,b:2", StoreRedis, "rediss-cluster://a:1,b:2"},
		{"memory", "", ""},
		{"redis://", "", ""},
	}
	for _, tt := range tests {
		kind, target, err := ParseStore(tt.in)
		if kind != tt.kind || target != tt.target || (err == nil) != (tt.kind != "") {
			t.Errorf("ParseStore(%q) = %q %q %v", tt.in, kind, target, err)
		}
	}
}

func TestSummaryHasNoSecrets(t *testing.T) {
	c := valid(t)
	c.Store = "redis://:hunter2@127.0.0.1:6379/0"
	s := c.Summary()
	if strings.Contains(s, "hunter2") || strings.Contains(s, c.Cookie.Secret) {
		t.Errorf("summary leaks a secret: %s", s)
	}
	for _, w := range []string{"127.0.0.1:8080", "http://127.0.0.1:3000", "htpasswd", "redis"} {
		if !strings.Contains(s, w) {
			t.Errorf("summary %q lacks %q", s, w)
		}
	}
}
