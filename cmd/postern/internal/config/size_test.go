package config

import (
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"4096", 4096, true},
		{"10MiB", 10 << 20, true},
		{"512KiB", 512 << 10, true},
		{"100MB", 100e6, true},
		{"1kb", 1000, true},
		{" 2 GiB ", 2 << 30, true},
		{"7B", 7, true},
		{"1TiB", 1 << 40, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"1.5MiB", 0, false},
		{"10XB", 0, false},
		{"10 Mi B", 0, false},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"8388608TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10MiB", "512KiB", "100MB", "4096", "1.5GB", "", "9223372036854775807", "8388607TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		// What parses must survive both ways of writing it back.
		if m, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || m != n {
			t.Fatalf("plain %d reparsed as %d, %v", n, m, err)
		}
		if m, err := ParseSize(FormatSize(n)); err != nil || m != n {
			t.Fatalf("FormatSize(%d) = %q reparsed as %d, %v", n, FormatSize(n), m, err)
		}
	})
}
