package config

import "testing"

// The per-address limits: defaults sized to a twentieth of the store
// budget (at least one largest body), set by flag, env or YAML alike.
func TestStashPerAddress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		yaml      string
		wantCount int64
		wantBytes int64
	}{
		{name: "defaults", wantCount: 100, wantBytes: (1 << 30) / 20},
		{name: "auto follows the budget", args: []string{"--store-budget", "4GiB"}, wantCount: 100, wantBytes: (4 << 30) / 20},
		{name: "auto is at least one body", args: []string{"--store-budget", "100MiB"}, wantCount: 100, wantBytes: 10 << 20},
		{name: "auto without a budget", args: []string{"--store-budget", "0"}, wantCount: 100, wantBytes: 100 << 20},
		{name: "flags", args: []string{"--stash-max-per-address", "7", "--stash-max-bytes-per-address", "3MiB"}, wantCount: 7, wantBytes: 3 << 20},
		{name: "off", args: []string{"--stash-max-per-address", "0", "--stash-max-bytes-per-address", "0"}},
		{name: "env", env: map[string]string{"POSTERN_STASH_MAX_PER_ADDRESS": "9", "POSTERN_STASH_MAX_BYTES_PER_ADDRESS": "1MiB"}, wantCount: 9, wantBytes: 1 << 20},
		{name: "yaml", yaml: "stash_max_per_address: 11\nstash_max_bytes_per_address: 2MiB\n", wantCount: 11, wantBytes: 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				args = append(args, "--config="+writeFile(t, "postern.yaml", tc.yaml))
			}
			c, err := Load(args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.Stash.MaxPerAddress != tc.wantCount || c.Stash.BytesPerAddress() != tc.wantBytes {
				t.Errorf("per address: %d submissions, %d bytes; want %d, %d", c.Stash.MaxPerAddress, c.Stash.BytesPerAddress(), tc.wantCount, tc.wantBytes)
			}
		})
	}
	for _, bad := range [][]string{{"--stash-max-per-address", "-1"}, {"--stash-max-bytes-per-address", "lots"}} {
		if _, err := Load(bad, env(nil)); err == nil {
			t.Errorf("Load(%q) accepted it", bad)
		}
	}
}
