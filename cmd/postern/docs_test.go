package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postern/postern/cmd/postern/internal/config"
)

const configDoc = "../../docs/configuration.md"

// TestEveryFlagIsDocumented fails when a flag exists that
// docs/configuration.md does not mention, with its variable and YAML key.
func TestEveryFlagIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	n := 0
	config.FlagSet("postern").VisitAll(func(f *flag.Flag) {
		n++
		for _, want := range []string{"`--" + f.Name + "`", "`" + config.EnvName(f.Name) + "`"} {
			if !strings.Contains(text, want) {
				t.Errorf("docs/configuration.md does not mention %s", want)
			}
		}
		if f.Name != "config" && !strings.Contains(text, "`"+config.KeyName(f.Name)+"`") {
			t.Errorf("docs/configuration.md does not mention the YAML key `%s`", config.KeyName(f.Name))
		}
	})
	if n < 25 {
		t.Errorf("only %d flags found; the flag set is not what this test expects", n)
	}
	// The subcommands' own flags.
	for _, f := range []string{"--user", "--password-stdin", "--log-level", "--listen"} {
		if !strings.Contains(text, f) {
			t.Errorf("docs/configuration.md does not mention %s", f)
		}
	}
}

// TestDocExamplesParse keeps the YAML examples in the documentation free of
// unknown keys and bad values.
func TestDocExamplesParse(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d YAML examples, want the minimal one and the routes one", len(blocks))
	}
	for i, b := range blocks {
		p := filepath.Join(t.TempDir(), "example.yaml")
		if err := os.WriteFile(p, []byte(b[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load([]string{"--config", p}, func(string) string { return "" }); err != nil {
			t.Errorf("example %d: %v", i+1, err)
		}
	}
}

// TestExampleConfigs runs check-config on the files in testdata/config.
func TestExampleConfigs(t *testing.T) {
	t.Chdir("../../testdata/config")
	for _, f := range []string{"minimal.yaml", "routes.yaml"} {
		if code, out, errOut := runCmd(t, "", "check-config", "--config", f); code != 0 || !strings.HasPrefix(out, "config ok: ") {
			t.Errorf("%s: exit %d %q %q", f, code, out, errOut)
		}
	}
	code, _, errOut := runCmd(t, "", "check-config", "--config", "bad.yaml")
	if code != exitConfig {
		t.Errorf("bad.yaml: exit %d", code)
	}
	if strings.Contains(errOut, "must be more than 0") || strings.Contains(errOut, "must be positive") {
		t.Errorf("a bad value is reported twice:\n%s", errOut)
	}
	for _, w := range []string{
		"listen: \"8080\" is not host:port", "bad.yaml:6: routes: unknown key \"path_prefx\"", "bad.yaml:7: stash_max_body",
		"bad.yaml:8: stash_ttl", "bad.yaml:9: cross_site_stash", "store:", "cookie_secret: decodes to 9 bytes",
		"allow: --allow-email entry 1", "login: no login method",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("bad.yaml: stderr lacks %q:\n%s", w, errOut)
		}
	}
}
