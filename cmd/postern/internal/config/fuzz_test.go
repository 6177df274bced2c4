package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The YAML file is the operator's, but it is parsed strictly and may come
// from a config management system: any bytes give a config or an error that
// says what is wrong, never a panic.
func FuzzConfigFile(f *testing.F) {
	for _, name := range []string{"minimal.yaml", "routes.yaml", "bad.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "testdata", "config", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("listen: [1, 2]\nroutes: {a: b}\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("store: redis://\x00\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "postern.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load([]string{"--config", path}, func(string) string { return "" })
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if cfg == nil {
			t.Fatal("no config and no error")
		}
	})
}
