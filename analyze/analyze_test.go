package analyze_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, &srv, pgtest.Options{MaxConnections: 200}))
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
			truth, res := record(t, "cron-vs-alter", scenario.Options{Table: c.table, Workers: c.workers, AppPrefix: c.prefix})
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

// record stages one scenario, records it and analyses the recording.
func record(t *testing.T, name string, opts scenario.Options) (scenario.Truth, *analyze.Result) {
	t.Helper()
	truth, out := pgtest.RecordStaged(t, srv, pgtest.Staged{Scenario: name, Options: opts}, 2500*time.Millisecond)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{out}, Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
	return truth, res
}

func pids(ss []analyze.Session) map[int32]bool {
	m := map[int32]bool{}
	for _, s := range ss {
		m[s.PID] = true
	}
	return m
}

func rootPIDs(rs []analyze.RootBlocker) []int32 {
	var out []int32
	for _, r := range rs {
		out = append(out, r.PID)
	}
	return out
}

// checkStaged stages, records and analyses each case in a subtest of its
// own, named after the scenario (with /hidden-operator where the operator
// hid, /rolled-back where the migration rolled back), and checks the
// analysis against what was staged.
func checkStaged(t *testing.T, cases []pgtest.Staged) {
	pgtest.SkipIfShort(t)
	for _, c := range cases {
		name := c.Scenario
		if c.Options.HiddenOperator {
			name += "/hidden-operator"
		}
		if c.Options.MigrationRollsBack {
			name += "/rolled-back"
		}
		t.Run(name, func(t *testing.T) {
			truth, res := record(t, c.Scenario, c.Options)
			truth.Scenario = name
			checkIncident(t, truth, res)
		})
	}
}

func TestAnalyzeStagedScenarios(t *testing.T) {
	checkStaged(t, []pgtest.Staged{
		{Scenario: "cron-vs-alter", Options: scenario.Options{Table: "sale_order_line", Workers: 5, AppPrefix: "odoo"}},
		{Scenario: "migration-holds-lock", Options: scenario.Options{Table: "account_move", Workers: 6, AppPrefix: "odoo"}},
		{Scenario: "lock-timeout-retry", Options: scenario.Options{Table: "stock_quant", Workers: 4, AppPrefix: "shop"}},
		{Scenario: "chain", Options: scenario.Options{Table: "project_task", Workers: 5, AppPrefix: "odoo"}},
		{Scenario: "row-contention", Options: scenario.Options{Table: "sale_order", Workers: 4, AppPrefix: "odoo"}},
		{Scenario: "create-index-pgdump", Options: scenario.Options{Table: "mail_message", Workers: 4, AppPrefix: "crm"}},
		{Scenario: "report-vs-alter", Options: scenario.Options{Table: "account_move_line", Workers: 5, AppPrefix: "wms"}},
		{Scenario: "alter-disconnects", Options: scenario.Options{Table: "res_partner", Workers: 5, AppPrefix: "portal"}},
		{Scenario: "dump-vs-alter-cancelled", Options: scenario.Options{Table: "stock_quant", Workers: 5, AppPrefix: "odoo"}},
		{Scenario: "cron-vs-alter", Options: scenario.Options{Table: "hr_payslip", Workers: 4, AppPrefix: "odoo", HiddenOperator: true}},
		{Scenario: "migration-holds-lock", Options: scenario.Options{Table: "project_task", Workers: 4, AppPrefix: "web", MigrationRollsBack: true}},
	})
}

// expectation is what each scenario's story implies beyond its truth.json.
type expectation struct {
	Kind     string
	Outcome  string // of the DDL; "" for none
	Attempts int    // at least
	RootRole string
	// RootOutcome is what happened to the root blocker.
	RootOutcome string
	// DDLQueue: a crowd queued behind a waiting DDL.
	DDLQueue bool
	// FirstAction is the runbook's first containment step on the root
	// blocker: terminate when it sits idle in transaction (default),
	// cancel when it runs a statement; "-" when the root is protected.
	FirstAction string
	// How it ended, as staged: the root blocker's ending (any of them:
	// where the recording cannot tell, the one that says so), the path
	// of the change, which side ended the queue, and the operator's
	// statement the post-mortem must report ("terminate root", "cancel
	// ddl", or "" for none).
	RootEndings []string
	Outcomes    []string // more DDL outcomes that are right (cannot tell)
	Path        string
	EndedBy     string
	Operator    string
}

var expectations = map[string]expectation{
	"cron-vs-alter": {analyze.KindDDLLockQueue, analyze.OutcomeGranted, 1, analyze.RoleOdooCron, "terminated", true, "",
		[]string{analyze.EndingTerminated}, nil, analyze.PathFinishForward, analyze.EndedByBlocker, "terminate root"},
	// The operator's statement does not show whom it named: the root's
	// backend went away, and the recording cannot tell why.
	// backend went away, and the recording cannot tell why — nor whether
	// the DDL, whose wait ended in that interval, got its lock first.
	"cron-vs-alter/hidden-operator": {analyze.KindDDLLockQueue, analyze.OutcomeUnknown, 1, analyze.RoleOdooCron, "gone", true, "",
		[]string{analyze.EndingLeft}, nil, analyze.PathCannotTell, analyze.EndedByBlocker, ""},
	// The migration's COMMIT is its last statement: committed, the
	// change in place.
	"migration-holds-lock": {analyze.KindDDLLockQueue, analyze.OutcomeHeld, 0, analyze.RoleMigration, "released", false, "",
		[]string{analyze.EndingCommitted}, nil, analyze.PathFinishForward, analyze.EndedByBlocker, ""},
	// The same, ending with ROLLBACK: the change is not in place.
	"migration-holds-lock/rolled-back": {analyze.KindDDLLockQueue, analyze.OutcomeHeld, 0, analyze.RoleMigration, "released", false, "",
		[]string{analyze.EndingRolledBack}, nil, analyze.PathRollBack, analyze.EndedByBlocker, ""},
	// The cron commits while the migration backs off after a timed-out
	// attempt: the queue ended from the waiting side. A sample between
	// the timeout and the commit shows the cron still holding its lock;
	// without one, both ended in the one interval.
	"lock-timeout-retry": {analyze.KindDDLLockQueue, analyze.OutcomeGranted, 2, analyze.RoleOdooCron, "released", false, "",
		[]string{analyze.EndingCommitted, analyze.EndingKeptLocks}, nil, analyze.PathFinishForward, analyze.EndedByWaiter, ""},
	"chain": {analyze.KindDDLLockQueue, analyze.OutcomeGranted, 1, analyze.RoleOdooHTTP, "terminated", true, "",
		[]string{analyze.EndingTerminated}, nil, analyze.PathFinishForward, analyze.EndedByBlocker, "terminate root"},
	"row-contention": {analyze.KindRowLock, "", 0, analyze.RoleOdooHTTP, "released", false, "",
		[]string{analyze.EndingCommitted}, nil, analyze.PathNone, analyze.EndedByBlocker, ""},
	"create-index-pgdump": {analyze.KindDDLLockQueue, analyze.OutcomeHeld, 0, analyze.RoleMigration, "released", false, "",
		[]string{analyze.EndingCommitted}, nil, analyze.PathFinishForward, analyze.EndedByBlocker, ""},
	// A cancelled statement outside a transaction block ends its
	// transaction: the cancel, seen, is what tells.
	"report-vs-alter": {analyze.KindDDLLockQueue, analyze.OutcomeGranted, 1, analyze.RoleOdooHTTP, "released", true, "cancel",
		[]string{analyze.EndingCancelled}, nil, analyze.PathFinishForward, analyze.EndedByBlocker, "cancel root"},
	// The ALTER's client left in the interval its blocker did: unless a
	// sample saw its lock granted, the recording cannot tell a completed
	// ALTER from a terminated one.
	"alter-disconnects": {analyze.KindDDLLockQueue, analyze.OutcomeCompletedOrTerminated, 1, analyze.RoleOdooCron, "terminated", true, "",
		[]string{analyze.EndingTerminated}, []string{analyze.OutcomeGranted}, analyze.PathCannotTell, analyze.EndedByBlocker, "terminate root"},
	// The operator cancelled the ALTER; the dump never let go.
	"dump-vs-alter-cancelled": {analyze.KindDDLLockQueue, analyze.OutcomeCancelled, 1, analyze.RoleBackup, "kept locks", true, "-",
		[]string{analyze.EndingKeptLocks}, nil, analyze.PathRollBack, analyze.EndedByWaiter, "cancel ddl"},
}

// kindEndings are how the other kinds' scenarios end, as staged (only
// the ending fields count).
var kindEndings = map[string]expectation{
	// ROLLBACK PREPARED, seen: the prepared transaction's locks went,
	// and the ALTER behind it got its lock.
	"prepared-root": {Outcome: analyze.OutcomeGranted, RootEndings: []string{analyze.EndingPreparedRolledBack}, Path: analyze.PathFinishForward,
		EndedBy: analyze.EndedByBlocker, Operator: "rollback prepared"},
	"advisory-queue": {RootEndings: []string{analyze.EndingCommitted}, EndedBy: analyze.EndedByBlocker},
}

// checkIncident compares an analysis with what was staged.
func checkIncident(t *testing.T, truth scenario.Truth, res *analyze.Result) {
	t.Helper()
	if check, ok := kindChecks[truth.Scenario]; ok {
		if len(res.Incidents) != 1 {
			for _, inc := range res.Incidents {
				t.Logf("incident %d %s %v-%v roots %v", inc.ID, inc.Kind, inc.Start, inc.End, rootPIDs(inc.RootBlockers))
			}
			t.Fatalf("found %d incidents, want 1", len(res.Incidents))
		}
		check(t, truth, res.Incidents[0])
		if c, ok := kindEndings[truth.Scenario]; ok {
			checkEnding(t, res.Incidents[0], truth, c)
			inc := res.Incidents[0]
			if d := inc.DDL; d != nil && c.Outcome != "" && d.Outcome != c.Outcome && !slices.Contains(c.Outcomes, d.Outcome) && !raced(inc, c) {
				t.Errorf("DDL outcome %q (%s), want %q", d.Outcome, d.Evidence, c.Outcome)
			}
			if c.Path != "" && inc.Runbook.Path != c.Path && !(raced(inc, c) && inc.Runbook.Path == analyze.PathCannotTell) {
				t.Errorf("runbook path %q (%s), want %q", inc.Runbook.Path, inc.Runbook.PathEvidence, c.Path)
			}
		}
		return
	}
	for _, inc := range res.Incidents {
		noHarm(t, inc)
	}
	c, ok := expectations[truth.Scenario]
	if !ok {
		t.Fatalf("no expectation for scenario %q", truth.Scenario)
	}
	if len(res.Incidents) != 1 {
		for _, inc := range res.Incidents {
			t.Logf("incident %d %s %v-%v roots %v", inc.ID, inc.Kind, inc.Start, inc.End, rootPIDs(inc.RootBlockers))
		}
		t.Fatalf("found %d incidents, want 1", len(res.Incidents))
	}
	inc := res.Incidents[0]
	if inc.Kind != c.Kind {
		t.Errorf("kind %q, want %q", inc.Kind, c.Kind)
	}
	if inc.End == nil {
		t.Error("not seen to drain")
	}
	if got := rootPIDs(inc.RootBlockers); len(got) != 1 || got[0] != truth.Root.PID {
		t.Errorf("root blockers %v, want only %s (pid %d)", got, truth.Root.Name, truth.Root.PID)
	}
	root := inc.RootBlockers[0]
	keptLocks := root.Ending == analyze.EndingKeptLocks && slices.Contains(c.RootEndings, analyze.EndingKeptLocks)
	if root.Role != c.RootRole || (root.Outcome != c.RootOutcome && !keptLocks) {
		t.Errorf("root blocker role %q (%s), outcome %q; want %q, %q", root.Role, root.RoleEvidence, root.Outcome, c.RootRole, c.RootOutcome)
	}
	// Containment starts with the root blocker: idle in transaction,
	// only a terminate releases its locks; running a statement, a cancel
	// comes first.
	first := cmp.Or(c.FirstAction, "terminate")
	if first != "-" && (len(inc.Actions) == 0 || inc.Actions[0].PID != truth.Root.PID || inc.Actions[0].Action != first) {
		t.Errorf("first action %+v, want %s pid %d", inc.Actions, first, truth.Root.PID)
	}
	checkEnding(t, inc, truth, c)
	var protected []int32
	for _, p := range inc.Protected {
		protected = append(protected, p.PID)
	}
	var bystanders []int32
	for _, b := range truth.Bystanders {
		bystanders = append(bystanders, b.PID)
	}
	if c.RootRole == analyze.RoleBackup {
		bystanders = append(bystanders, truth.Root.PID)
	}
	if !slices.Equal(protected, bystanders) {
		t.Errorf("protected sessions %v, want the bystanders %v", protected, bystanders)
	}
	waiters := pids(inc.Waiters)
	for _, w := range truth.Waiters {
		if !waiters[w.PID] {
			t.Errorf("%s (pid %d) not among the waiters", w.Name, w.PID)
		}
	}
	for _, b := range truth.Bystanders {
		if waiters[b.PID] || slices.Contains(rootPIDs(inc.RootBlockers), b.PID) {
			t.Errorf("bystander %s (pid %d) reported as a waiter or a root blocker", b.Name, b.PID)
		}
	}
	checkWhatIf(t, inc, c.DDLQueue)
	checkRunbook(t, inc, truth, c)
	if c.Outcome == "" {
		if inc.DDL != nil {
			t.Errorf("a DDL reported where there was none: %+v", *inc.DDL)
		}
		return
	}
	if inc.DDL == nil {
		t.Fatal("no DDL found")
	}
	d := inc.DDL
	if d.PID != truth.DDL.PID || d.Mode != truth.DDLMode || d.Relation != truth.Table {
		t.Errorf("DDL pid %d %s on %s, want pid %d %s on %s", d.PID, d.Mode, d.Relation, truth.DDL.PID, truth.DDLMode, truth.Table)
	}
	if d.Outcome != c.Outcome && !slices.Contains(c.Outcomes, d.Outcome) && !raced(inc, c) {
		t.Errorf("DDL outcome %q (%s), want %q", d.Outcome, d.Evidence, c.Outcome)
	}
	if d.Attempts < c.Attempts {
		t.Errorf("DDL attempts %d, want at least %d", d.Attempts, c.Attempts)
	}
	if c.RootRole == analyze.RoleBackup || c.RootRole == analyze.RoleReplication || c.RootRole == analyze.RoleAdmin {
		// The blocker is protected: the migration attempt gives way.
		if inc.Actions[0].PID != d.PID || inc.Actions[0].Action != analyze.ActionCancel {
			t.Errorf("first action %+v, want to cancel the waiting DDL %d: its blocker is a protected %s", inc.Actions[0], d.PID, c.RootRole)
		}
	} else if d.PID != truth.Root.PID {
		// A waiting DDL is left alone: its blocker is cleared instead.
		last := inc.Actions[len(inc.Actions)-1]
		if last.PID != d.PID || last.Action != "leave" {
			t.Errorf("last action %+v, want to leave the waiting DDL %d", last, d.PID)
		}
	}
}

// checkWhatIf: the replays start from the actual cost and never exceed it;
// where the DDL queued a crowd behind it, a 1 s lock_timeout spares most
// of it; an idle timeout longer than the incident changes nothing.
func checkWhatIf(t *testing.T, inc analyze.Incident, ddlQueue bool) {
	t.Helper()
	byName := map[string]analyze.WhatIf{}
	for _, w := range inc.WhatIf {
		byName[w.Scenario] = w
	}
	actual, ok := byName["actual"]
	if !ok {
		t.Fatalf("no actual row in what_if: %+v", inc.WhatIf)
	}
	if d := actual.WaiterSeconds - inc.WaiterSeconds; d > 0.01 || d < -0.01 || actual.PeakWaiters != inc.PeakWaiters {
		t.Errorf("what_if actual %+v differs from the incident (%.3f waiter-seconds, peak %d)", actual, inc.WaiterSeconds, inc.PeakWaiters)
	}
	for _, w := range inc.WhatIf {
		if w.WaiterSeconds > actual.WaiterSeconds+0.01 || w.PeakWaiters > actual.PeakWaiters {
			t.Errorf("%s costs more than what happened: %+v vs %+v", w.Scenario, w, actual)
		}
	}
	if ddlQueue {
		lt, ok := byName["lock_timeout = 1s"]
		if !ok || lt.WaiterSeconds > 0.7*actual.WaiterSeconds {
			t.Errorf("lock_timeout = 1s: %+v, want well under the actual %.1f waiter-seconds", lt, actual.WaiterSeconds)
		}
	}
	if it, ok := byName["idle_in_transaction_session_timeout = 1m0s"]; ok && it.WaiterSeconds != actual.WaiterSeconds {
		t.Errorf("an idle timeout of a minute changed a %.1f s incident: %+v", inc.Duration, it)
	}
}

// raced: the DDL's wait ended in the same few milliseconds as its
// blocker released, closer than the server's timestamps can order, and
// the draft says it cannot tell — the one honest answer there (its path
// and which side ended the queue are then unknown too).
func raced(inc analyze.Incident, c expectation) bool {
	return inc.DDL != nil && c.Outcome == analyze.OutcomeGranted && inc.DDL.Outcome == analyze.OutcomeUnknown
}

// checkRunbook: the runbook's questions get the answers the story implies.
func checkRunbook(t *testing.T, inc analyze.Incident, truth scenario.Truth, c expectation) {
	t.Helper()
	rb := inc.Runbook
	if len(rb.Signals) == 0 || rb.Signals[0].Answer != "yes" {
		t.Errorf("signal 'many sessions waiting': %+v", rb.Signals)
	}
	wantPath := c.Path
	if inc.DDL != nil && inc.DDL.Outcome == analyze.OutcomeGranted && slices.Contains(c.Outcomes, analyze.OutcomeGranted) {
		wantPath = analyze.PathFinishForward // its lock was seen granted
	}
	if raced(inc, c) {
		wantPath = analyze.PathCannotTell
	}
	if rb.Path != wantPath {
		t.Errorf("runbook path %q (%s), want %q", rb.Path, rb.PathEvidence, wantPath)
	}
	// A crowd queued behind the DDL makes its table hot, whatever the
	// table is called.
	if c.DDLQueue && (len(rb.Signals) < 2 || rb.Signals[1].Answer != "yes") {
		t.Errorf("signal 'a DDL on a hot table' with sessions queued behind the DDL on %s: %+v", truth.Table, rb.Signals)
	}
	if len(rb.Verification) == 0 || rb.Verification[0].Answer != "yes" {
		t.Errorf("verification 'waiters back to zero': %+v", rb.Verification)
	}
	if !slices.ContainsFunc(rb.Done, func(s string) bool { return strings.HasPrefix(s, fmt.Sprintf("root blocker pid %d ", truth.Root.PID)) }) {
		t.Errorf("what was done: %v, want a line about root pid %d", rb.Done, truth.Root.PID)
	}
	for _, q := range rb.Triage {
		if q.Answer == "" || q.Evidence == "" {
			t.Errorf("triage question without an answer and evidence: %+v", q)
		}
	}
}

// Two queues at once on different tables, joined by no session, are two
// incidents.
func TestAnalyzeConcurrentIndependentQueues(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewScenarioDatabase(t, srv)
	out := filepath.Join(t.TempDir(), "rec")
	cfg := pgtest.FastCapture(out)
	cfg.DSN = db
	r := pgtest.StartCapture(t, cfg)
	ddl, err := scenario.CronVsAlter(ctx, db, scenario.Options{Table: "stock_move", Workers: 4, AppPrefix: "odoo"})
	if err != nil {
		t.Fatal(err)
	}
	defer ddl.Close()
	rows, err := scenario.RowContention(ctx, db, scenario.Options{Table: "sale_order", Workers: 3, AppPrefix: "odoo"})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	// Both queues stand for 2.5 s of samples that see all 8 waiters (the
	// DDL and 4 workers, 3 row waiters).
	both := func(tk recording.Tick) bool { return tk.LockWaiters >= 8 }
	first := r.WaitTick("both queues", both)
	r.WaitTick("both queues standing for 2.5 s", func(tk recording.Tick) bool {
		return both(tk) && tk.ClientTS-first.ClientTS >= 2_500_000
	})
	if err := ddl.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rows.End(ctx); err != nil {
		t.Fatal(err)
	}
	r.WaitTick("the queues drained", func(tk recording.Tick) bool { return tk.LockWaiters == 0 })
	r.Stop()
	res, err := analyze.Run(ctx, analyze.Config{Dirs: []string{out}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int32{}
	for _, inc := range res.Incidents {
		got[inc.Kind] = inc.RootBlockers[0].PID
	}
	want := map[string]int32{analyze.KindDDLLockQueue: ddl.Truth.Root.PID, analyze.KindRowLock: rows.Truth.Root.PID}
	if len(res.Incidents) != 2 || got[analyze.KindDDLLockQueue] != want[analyze.KindDDLLockQueue] || got[analyze.KindRowLock] != want[analyze.KindRowLock] {
		t.Errorf("incidents by kind and root %v, want %v", got, want)
	}
}

// Workers that reach the database through PgBouncer are recognised as such
// from the recorded SHOW SERVERS.
func TestAnalyzePgBouncerRoutedWorkers(t *testing.T) {
	pgtest.SkipIfShort(t)
	ctx := context.Background()
	db := pgtest.NewDatabase(t, srv)
	bouncer, err := pgtest.StartPgBouncer(ctx, srv, pgtest.PgBouncerOptions{PoolMode: "session", PoolSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer bouncer.Stop()
	cc, err := pgx.ParseConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rec")
	cfg := pgtest.FastCapture(out)
	cfg.PgBouncerDSN = bouncer.AdminDSN()
	truth, err := scenario.RecordIncident(ctx, scenario.RecordOptions{
		DSN: db, Capture: cfg, Hold: 2 * time.Second,
		Stage: scenario.Options{Table: "stock_move", Workers: 3, WorkerDSN: bouncer.DSN(cc.Database)},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := analyze.Run(ctx, analyze.Config{Dirs: []string{out}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 1 {
		t.Fatalf("got %d incidents, want 1", len(res.Incidents))
	}
	roles := map[int32]string{}
	for _, w := range res.Incidents[0].Waiters {
		roles[w.PID] = w.Role
	}
	for _, w := range truth.Waiters {
		if roles[w.PID] != analyze.RolePgBouncer {
			t.Errorf("worker %d through PgBouncer has role %q", w.PID, roles[w.PID])
		}
	}
	if roles[truth.DDL.PID] != analyze.RoleMigration {
		t.Errorf("the DDL, connected directly, has role %q", roles[truth.DDL.PID])
	}
}

// checkEnding compares how the incident ended with the staging: the root
// blocker's ending, the side that ended the queue, the operator's
// statements "what was done" reports — and no statement it invents.
func checkEnding(t *testing.T, inc analyze.Incident, truth scenario.Truth, c expectation) {
	t.Helper()
	root := inc.RootBlockers[0]
	t.Logf("ended by %s: %s; path %s; done:\n  %s", inc.EndedBy, inc.Ending, inc.Runbook.Path, strings.Join(inc.Runbook.Done, "\n  "))
	if inc.DDL != nil {
		for _, a := range inc.DDL.AttemptLog {
			t.Logf("attempt %+v", a)
		}
	}
	if !slices.Contains(c.RootEndings, root.Ending) {
		t.Errorf("root blocker ending %q (%s), want one of %v", root.Ending, root.EndingEvidence, c.RootEndings)
	}
	if root.EndingEvidence == "" {
		t.Error("root blocker ending without evidence")
	}
	// Both sides ending in the one interval is an honest "cannot tell".
	together := inc.EndedBy == analyze.EndedByUnknown && strings.HasPrefix(inc.Ending, "both sides ended together")
	if inc.EndedBy != c.EndedBy && !(raced(inc, c) && inc.EndedBy == analyze.EndedByUnknown) && !together {
		t.Errorf("ended by %q (%s), want %q", inc.EndedBy, inc.Ending, c.EndedBy)
	}
	done := strings.Join(inc.Runbook.Done, "\n")
	var want string
	switch c.Operator {
	case "terminate root":
		want = fmt.Sprintf("pg_terminate_backend(%d)", truth.Root.PID)
	case "cancel root":
		want = fmt.Sprintf("pg_cancel_backend(%d)", truth.Root.PID)
	case "cancel ddl":
		want = fmt.Sprintf("pg_cancel_backend(%d)", truth.DDL.PID)
	case "rollback prepared":
		want = "ROLLBACK PREPARED"
	}
	if want != "" && !strings.Contains(done, want) {
		t.Errorf("what was done lacks %s:\n%s", want, done)
	}
	for _, verb := range []string{"terminate", "cancel"} {
		for _, pid := range truth.PIDs() {
			if s := fmt.Sprintf("pg_%s_backend(%d)", verb, pid); s != want && strings.Contains(done, s) {
				t.Errorf("what was done reports %s, which nobody ran:\n%s", s, done)
			}
		}
	}
	if len(inc.Operator) > 0 && c.Operator == "" && !strings.Contains(truth.Scenario, "hidden") {
		t.Errorf("operator statements %+v where none was staged", inc.Operator)
	}
	d := inc.DDL
	if d == nil {
		return
	}
	if d.Outcome != analyze.OutcomeHeld {
		if len(d.AttemptLog) != d.Attempts {
			t.Errorf("attempt log %+v for %d attempts", d.AttemptLog, d.Attempts)
		} else if last := d.AttemptLog[len(d.AttemptLog)-1]; last.Outcome != d.Outcome && d.Outcome != analyze.OutcomeLockTimeout {
			t.Errorf("last attempt %+v, DDL outcome %q", last, d.Outcome)
		}
	}
	if d.Attempts > 1 {
		// Between attempts no one waited: the series says so.
		for i, a := range d.AttemptLog[:len(d.AttemptLog)-1] {
			if a.Outcome != analyze.OutcomeGaveUp {
				t.Errorf("attempt %d: %+v, want gave up", i+1, a)
			}
			next := d.AttemptLog[i+1].Start
			zero := false
			for _, p := range inc.Waiting {
				if p.Waiters == 0 && !p.TS.Before(*a.End) && !p.TS.After(next) {
					zero = true
				}
			}
			// The application's queries go through between attempts: the
			// queue is empty then, not carried over from the attempt before.
			if !zero && d.AttemptLog[i+1].Waited > 0 {
				t.Errorf("no zero in the waiting series between attempt %d (ended %v) and the next (%v)", i+1, a.End, next)
			}
		}
	}
	if d.Outcome == analyze.OutcomeHeld && strings.Contains(d.Query, "pg_sleep") && d.QueryNote == "" {
		t.Errorf("the DDL's statement %q did not take its lock, and no note says so", d.Query)
	}
}
