package main_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestCode checks that the production binary links no
// test helper: no package of this module that imports testing (the lab and
// demo commands start their servers through fixtures/pgtest/pgserver, not
// fixtures/pgtest), and no code of package testing beyond its
// initialisation. The one third-party importer of testing is Apache
// Thrift (under arrow-go's Parquet reader), for a TestLogger helper the
// linker leaves out; the symbol check below fails if that ever changes.
func TestBinaryLinksNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	// go-abnf (under Prometheus' expfmt, for the recorder's metrics)
	// imports testing for fuzzing helpers the linker leaves out too.
	allowed := map[string]bool{"github.com/apache/thrift/lib/go/thrift": true, "github.com/pandatix/go-abnf": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if pkg == "github.com/lockscope/lockscope/fixtures/pgtest" {
			t.Errorf("lockscope links the test helpers %s", pkg)
		}
		for _, imp := range strings.Fields(imports) {
			if imp == "testing" && !allowed[pkg] {
				t.Errorf("lockscope links %s, which imports testing", pkg)
			}
		}
	}

	syms, err := exec.Command("go", "tool", "nm", bin(t)).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(syms), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		name := f[len(f)-1]
		if !strings.HasPrefix(name, "testing.") {
			continue
		}
		switch name {
		case "testing.init", "testing..inittask", "testing.supportedTypes":
			// Package initialisation, linked because thrift imports testing.
		default:
			t.Errorf("the lockscope binary holds %s: code of package testing is linked", name)
		}
	}
}
