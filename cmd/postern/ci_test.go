package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var fuzzFuncRE = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)

// TestCIFuzzesEveryTarget: every fuzz target in the repository is run by
// .ci/run (as "./<package dir> <FuzzName>"), and has a seed corpus in its
// package's testdata/fuzz/<FuzzName>/.
func TestCIFuzzesEveryTarget(t *testing.T) {
	root := filepath.Join("..", "..")
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		for _, m := range fuzzFuncRE.FindAllStringSubmatch(string(src), -1) {
			found++
			entry := "./" + filepath.ToSlash(dir) + " " + m[1]
			if !strings.Contains(string(ci), `"`+entry+`"`) {
				t.Errorf(".ci/run does not fuzz %s (add %q to fuzz_targets)", m[1], entry)
			}
			seeds, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "testdata", "fuzz", m[1], "*"))
			if len(seeds) == 0 {
				t.Errorf("%s has no seed corpus in %s", m[1], filepath.Join(dir, "testdata", "fuzz", m[1]))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no fuzz targets found: the walk is broken")
	}
}
