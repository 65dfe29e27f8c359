package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

var (
	srv *pgtest.Server
	// lockscope runs lockscope-render and lockscope-capture from its own
	// directory.
	built = pgtest.NewBinary("lockscope", "../lockscope-render", "../lockscope-capture")
	bin   = built.Path // the command, built when a test first runs it
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMainWithBinary(m, &srv, pgtest.Options{}, built))
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return pgtest.RunCommand(t, exec.Command(bin(t), args...))
}

func TestAnalyzeBadInput(t *testing.T) {
	foreign := t.TempDir()
	p := filepath.Join(foreign, "ticks", "cluster=x", "date=2026-11-24", "20261124T000000.000000Z.parquet")
	os.MkdirAll(filepath.Dir(p), 0o700)
	os.WriteFile(p, []byte("PAR1 but not really"), 0o600)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"empty directory", []string{"analyze", t.TempDir()}, 1, "no samples"},
		{"missing directory", []string{"analyze", filepath.Join(t.TempDir(), "nope")}, 1, "no such file"},
		{"foreign file", []string{"analyze", foreign}, 1, "not a readable Parquet file"},
		{"no argument", []string{"analyze"}, 2, "requires at least 1 arg"},
		{"bad time", []string{"analyze", t.TempDir(), "--since", "yesterday"}, 2, "RFC 3339"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, c.args...)
			if code != c.code {
				t.Errorf("exit status %d, want %d; stderr: %s", code, c.code, stderr)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if !strings.Contains(first, c.want) {
				t.Errorf("first line %q lacks %q", first, c.want)
			}
		})
	}
}

// recordSaleOrder stages a DDL lock queue on sale_order in a database of
// the test's own and records it. It returns the database's DSN, the
// recording's directory and what was staged.
func recordSaleOrder(t *testing.T) (db, rec string, truth scenario.Truth) {
	t.Helper()
	pgtest.SkipIfShort(t)
	db = pgtest.NewDatabase(t, srv)
	rec = filepath.Join(t.TempDir(), "rec")
	truth, err := scenario.RecordIncident(context.Background(), scenario.RecordOptions{
		DSN: db, Hold: 2 * time.Second, Stage: scenario.Options{Table: "sale_order", Workers: 3},
		Capture: capture.Config{Out: rec, ProbeInterval: 50 * time.Millisecond, FullInterval: 500 * time.Millisecond, BurstInterval: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, rec, truth
}

// analyzeSaleOrder runs analyze on a recording of recordSaleOrder into a
// new directory, which it returns with analyze's stderr, and checks that
// the summary names the incident and its root blocker.
func analyzeSaleOrder(t *testing.T, rec string, truth scenario.Truth) (out, stderr string) {
	t.Helper()
	out = filepath.Join(t.TempDir(), "pm")
	stdout, stderr, code := run(t, "analyze", rec, "-o", out)
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "ddl_lock_queue on sale_order") || !strings.Contains(stdout, fmt.Sprintf("root blocker: pid %d", truth.Root.PID)) {
		t.Errorf("summary does not name the incident and its root blocker:\n%s", stdout)
	}
	return out, stderr
}

// readResult reads the incident.json in dir.
func readResult(t *testing.T, dir string) analyze.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "incident.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res analyze.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("incident.json: %v", err)
	}
	return res
}

func TestAnalyzeWritesIncidentJSON(t *testing.T) {
	_, rec, truth := recordSaleOrder(t)
	out, _ := analyzeSaleOrder(t, rec, truth)
	if pm, err := os.ReadFile(filepath.Join(out, "postmortem.md")); err != nil || !strings.Contains(string(pm), fmt.Sprintf("pid %d", truth.Root.PID)) {
		t.Errorf("postmortem.md missing or without the root blocker: %v", err)
	}
	path := filepath.Join(out, "incident.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("incident.json mode %v, want 0600 (it holds query text)", fi.Mode().Perm())
	}
	res := readResult(t, out)
	if res.SchemaVersion != analyze.SchemaVersion || len(res.Incidents) != 1 || res.Incidents[0].DDL == nil || res.Incidents[0].DDL.PID != truth.DDL.PID {
		t.Errorf("incident.json: schema version %d, incidents %+v; want version %d and one incident with DDL pid %d",
			res.SchemaVersion, res.Incidents, analyze.SchemaVersion, truth.DDL.PID)
	}
}
