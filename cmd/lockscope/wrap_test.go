package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// The full binary's wrap mode: the guard cancels a deploy's queued ALTER,
// the summary carries analyze's incident, and --report writes the
// post-mortem with the guard's cancel and what it spared.
func TestWrapReportShowsTheGuard(t *testing.T) {
	dsn := pgtest.NewDatabase(t, srv)
	ctx := context.Background()
	session := func(app string) *pgx.Conn { return pgtest.Connect(t, dsn, app) }
	waiting := func(app string, n int) {
		t.Helper()
		admin := session("admin-poll")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var got int
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE $1", app).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d sessions %s waiting, want %d", got, app, n)
			}
		}
	}
	blocker := session("blocker")
	if _, err := blocker.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, "BEGIN; UPDATE t SET id = 2"); err != nil {
		t.Fatal(err)
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: apt-get install postgresql-client (make postgres)")
	}
	out, report := filepath.Join(t.TempDir(), "rec"), filepath.Join(t.TempDir(), "report")
	cmd := exec.Command(bin(t), "capture", "--dsn", dsn, "--out", out, "--probe-interval", "50ms", "--full-interval", "100ms",
		"--burst-interval", "100ms", "--tail", "500ms", "--guard-wait", "2s", "--guard-queue", "3", "--report", report, "--",
		psql, "-X", "-v", "ON_ERROR_STOP=1", dsn, "-c", "ALTER TABLE t ADD COLUMN x int")
	cmd.Env = append(os.Environ(), "PGAPPNAME=deploy")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	waiting("deploy", 1)
	for i := range 3 {
		r := session(fmt.Sprintf("reader-%d", i))
		go r.Exec(ctx, "SELECT count(*) FROM t")
	}
	waiting("reader-%", 3)
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want psql's status 1; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("lockscope still running; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "lockscope: incident 1: ddl_lock_queue") || !strings.Contains(stderr.String(), "DDL pid") {
		t.Errorf("the summary lacks analyze's incident line:\n%s", stderr.String())
	}

	md, err := os.ReadFile(filepath.Join(report, "postmortem.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Deploy window and guard", "exited with status 1", "the guard cancelled pid", "| without the guard |", "waiter-seconds spared"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("postmortem.md lacks %q", want)
		}
	}
	res := readResult(t, report)
	rec := res.Recording
	if len(rec.Commands) != 1 || rec.Commands[0].Outcome != "exited with status 1" || rec.Commands[0].End == nil {
		t.Errorf("commands %+v, want one that exited with status 1", rec.Commands)
	}
	if len(rec.GuardCancels) != 1 || rec.GuardCancels[0].Incident != 1 || rec.GuardCancels[0].QueuedBehind != 3 || rec.GuardCancels[0].Mode != "AccessExclusiveLock" {
		t.Fatalf("guard_cancels %+v, want one AccessExclusiveLock cancel with 3 behind, in incident 1", rec.GuardCancels)
	}
	if len(res.Incidents) != 1 {
		t.Fatalf("%d incidents, want 1", len(res.Incidents))
	}
	if d := res.Incidents[0].DDL; d == nil || d.Outcome != analyze.OutcomeCancelled || !strings.Contains(d.Evidence, "lockscope's guard cancelled it") {
		t.Errorf("the DDL's outcome %+v, want cancelled by the guard", d)
	}
	var actual, without *analyze.WhatIf
	for i, w := range res.Incidents[0].WhatIf {
		switch w.Scenario {
		case "actual":
			actual = &res.Incidents[0].WhatIf[i]
		case "without the guard":
			without = &res.Incidents[0].WhatIf[i]
		}
	}
	if actual == nil || without == nil || without.WaiterSeconds <= actual.WaiterSeconds {
		t.Errorf("what-if: actual %+v, without the guard %+v: want the guard to have spared waiter-seconds", actual, without)
	}
	blocker.Exec(ctx, "ROLLBACK")

	// --report writes the very tree analyze -o writes.
	again := filepath.Join(t.TempDir(), "again")
	if _, stderr, code := run(t, "analyze", out, "-o", again); code != 0 {
		t.Fatalf("analyze -o: exit %d: %s", code, stderr)
	}
	if a, b := treeOf(t, report), treeOf(t, again); !slices.Equal(a, b) || !slices.Contains(a, "tables/incidents.parquet") {
		t.Errorf("--report wrote %v; analyze -o wrote %v", a, b)
	}
}

// treeOf lists the files under dir, relative to it, sorted.
func treeOf(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
