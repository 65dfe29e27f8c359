package analyze_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	s, err := pgtest.Start(context.Background(), pgtest.Options{MaxConnections: 200})
	if err != nil {
		fmt.Fprintln(os.Stderr, "analyze tests:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

func fastCapture(out string) capture.Config {
	return capture.Config{Out: out, ProbeInterval: 50 * time.Millisecond, FullInterval: 500 * time.Millisecond,
		BurstInterval: 100 * time.Millisecond, BurstHold: 300 * time.Millisecond}
}

// The analysis of a staged incident must find what was staged: the tests
// compare with the truth known at staging time, never with earlier output.
func TestAnalyzeStagedCronVsAlter(t *testing.T) {
	pgtest.SkipIfShort(t)
	for _, c := range []struct {
		table   string
		workers int
		prefix  string
	}{
		{"stock_move", 8, "odoo"},
		{"ir_attachment", 5, "erp-prod"},
	} {
		t.Run(c.table, func(t *testing.T) {
			db := pgtest.NewDatabase(t, srv)
			out := filepath.Join(t.TempDir(), "rec")
			truth, err := scenario.RecordIncident(context.Background(), scenario.RecordOptions{
				DSN: db, Capture: fastCapture(out), Hold: 2 * time.Second,
				Stage: scenario.Options{Table: c.table, Workers: c.workers, AppPrefix: c.prefix},
			})
			if err != nil {
				t.Fatal(err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{out}, Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			mem.AssertSize(t, 0)
			if len(res.Incidents) != 1 {
				t.Fatalf("found %d incidents, want 1: %+v", len(res.Incidents), res.Incidents)
			}
			inc := res.Incidents[0]
			if inc.Kind != analyze.KindDDLLockQueue {
				t.Errorf("kind %q, want %q", inc.Kind, analyze.KindDDLLockQueue)
			}
			if !slices.Contains(inc.Relations, c.table) {
				t.Errorf("relations %v lack %s", inc.Relations, c.table)
			}
			if inc.End == nil {
				t.Error("incident not seen to drain")
			}
			if inc.PeakWaiters != c.workers+1 {
				t.Errorf("peak waiters %d, want %d (the DDL and every worker)", inc.PeakWaiters, c.workers+1)
			}
			// Everyone waited about Hold: the integral is at least Hold for
			// each, less a sample's worth.
			if min := float64(c.workers+1) * 1.5; inc.WaiterSeconds < min {
				t.Errorf("waiter-seconds %.2f, want at least %.1f", inc.WaiterSeconds, min)
			}
			if len(inc.RootBlockers) != 1 {
				t.Fatalf("root blockers %+v, want exactly the cron", inc.RootBlockers)
			}
			root := inc.RootBlockers[0]
			if root.PID != truth.Root.PID || !root.BackendStart.Equal(truth.Root.BackendStart.UTC()) {
				t.Errorf("root blocker pid %d started %v, want %d started %v", root.PID, root.BackendStart, truth.Root.PID, truth.Root.BackendStart)
			}
			if root.State != "idle in transaction" || root.ApplicationName != truth.Root.ApplicationName {
				t.Errorf("root blocker state %q app %q", root.State, root.ApplicationName)
			}
			if !root.Ended || root.Gone == nil || root.DrainSeconds == nil {
				t.Errorf("root blocker was terminated: ended=%v gone=%v drain=%v", root.Ended, root.Gone, root.DrainSeconds)
			}
			if !slices.Contains(root.Locks, analyze.HeldLock{Target: c.table, Mode: "RowExclusiveLock"}) {
				t.Errorf("root blocker's locks %v lack RowExclusiveLock on %s", root.Locks, c.table)
			}
			if root.PeakBehind != c.workers+1 {
				t.Errorf("peak behind root %d, want %d", root.PeakBehind, c.workers+1)
			}
			if inc.DDL == nil {
				t.Fatal("no DDL found")
			}
			if inc.DDL.PID != truth.DDL.PID || inc.DDL.Mode != "AccessExclusiveLock" || inc.DDL.Relation != c.table {
				t.Errorf("DDL %+v, want pid %d AccessExclusiveLock on %s", *inc.DDL, truth.DDL.PID, c.table)
			}
			if inc.DDL.Outcome != analyze.OutcomeGranted {
				t.Errorf("DDL outcome %q (%s), want granted once the root was terminated", inc.DDL.Outcome, inc.DDL.Evidence)
			}
			if inc.DDL.QueuedBehind != c.workers {
				t.Errorf("queued behind the DDL: %d, want %d", inc.DDL.QueuedBehind, c.workers)
			}
			waiters := map[int32]bool{}
			for _, w := range inc.Waiters {
				waiters[w.PID] = true
			}
			for _, w := range append(truth.Waiters, truth.DDL) {
				if !waiters[w.PID] {
					t.Errorf("waiter %s (pid %d) not in the incident", w.Name, w.PID)
				}
			}
			if waiters[truth.Root.PID] {
				t.Error("the root blocker is listed as a waiter")
			}
			if inc.Edges[analyze.EdgeHard] == 0 || inc.Edges[analyze.EdgeSoftObserved] == 0 {
				t.Errorf("edge kinds %v: want hard (DDL on cron) and observed soft (workers on DDL)", inc.Edges)
			}
		})
	}
}
