package gateway

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/pages from the embedded templates")

const goldenDir = "../testdata/pages"

// TestPagesGolden renders every embedded page template with the sample data
// operators' templates are checked with, and compares it with its golden
// file in testdata/pages: a change to a page shows in review as a change
// to the golden file. Run with -update to rewrite them.
func TestPagesGolden(t *testing.T) {
	p, err := newPages("Acme Corp", "")
	if err != nil {
		t.Fatal(err)
	}
	names, _ := templateFS.ReadDir("templates")
	n := 0
	for _, e := range names {
		name := strings.TrimSuffix(e.Name(), ".html")
		if name == "layout" {
			continue
		}
		n++
		var buf bytes.Buffer
		if err := p.t.ExecuteTemplate(&buf, e.Name(), p.sample(name)); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		golden := filepath.Join(goldenDir, e.Name())
		if *update {
			if err := os.MkdirAll(goldenDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./gateway -run TestPagesGolden -update)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s differs from %s (run with -update if the change is meant):\n%s", e.Name(), golden, buf.String())
		}
		if !strings.Contains(buf.String(), "Acme Corp") {
			t.Errorf("%s does not show the brand name", e.Name())
		}
	}
	if n < 5 {
		t.Fatalf("only %d page templates found", n)
	}
}

// TestTemplatesDocumented keeps docs/templates.md in step with the code:
// every template and every field of the pages' data is described there.
func TestTemplatesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/templates.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	names, _ := templateFS.ReadDir("templates")
	for _, e := range names {
		if !strings.Contains(text, "`"+e.Name()+"`") {
			t.Errorf("docs/templates.md does not describe `%s`", e.Name())
		}
	}
	ty := reflect.TypeOf(pageData{})
	for i := 0; i < ty.NumField(); i++ {
		if f := ty.Field(i).Name; !strings.Contains(text, "`."+f+"`") {
			t.Errorf("docs/templates.md does not describe the field `.%s`", f)
		}
	}
	he := reflect.TypeOf(httpError{})
	for _, f := range []string{"Title", "Message", "BackURL", "RetryStash", "Login"} {
		if _, ok := he.FieldByName(f); !ok {
			t.Fatalf("httpError has no field %s any more: update this test and docs/templates.md", f)
		}
		if !strings.Contains(text, "`.Error."+f+"`") {
			t.Errorf("docs/templates.md does not describe `.Error.%s`", f)
		}
	}
}
