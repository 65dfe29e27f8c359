package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `make install` puts both binaries and the unit under DESTDIR, and the
// unit passes `systemd-analyze verify` with no complaint (an unknown or
// misspelt directive is only a warning there, so any output fails).
// Where systemd-analyze is missing the test fails with the command that
// installs it (`make postgres` installs it on Debian).
func TestMakeInstallAndUnitVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: it builds both binaries through make")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: apt-get install systemd (make postgres does it on Debian)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	make := exec.Command("make", "-C", root, "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+filepath.Join(t.TempDir(), "bin"))
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/lockscope", "usr/bin/lockscope-capture"} {
		if fi, err := os.Stat(filepath.Join(dest, f)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s not installed 0755 (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/lockscope/lockscope.env.example")); err != nil {
		t.Error(err)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/lib/systemd/system/lockscope-capture@.service"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{
		"ExecStart=/usr/bin/lockscope-capture capture --out /var/lib/lockscope/%i",
		"User=lockscope", "EnvironmentFile=/etc/lockscope/%i.env", "Restart=on-failure",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/lockscope/%i", "PrivateTmp=yes",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).MatchString(text) {
			t.Errorf("the installed unit lacks %q", want)
		}
	}
	if strings.Contains(text, "--dsn") || strings.Contains(text, "PGPASSWORD") {
		t.Error("the unit puts a connection string or password on the command line")
	}
	// systemd-analyze checks that ExecStart's binary exists: point it at
	// the installed one.
	dir := t.TempDir()
	text = strings.ReplaceAll(text, "/usr/bin/lockscope-capture", filepath.Join(dest, "usr/bin/lockscope-capture"))
	if err := os.WriteFile(filepath.Join(dir, "lockscope-capture@.service"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "lockscope-capture@db1.service")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
