package analyze_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

// Every kind of lock incident, staged on a real server with other tables
// and names than the recorded fixtures, and checked against what was
// staged — never against analyze's own output.
func TestAnalyzeStagedKinds(t *testing.T) {
	checkStaged(t, []pgtest.Staged{
		{Scenario: "prepared-root", Options: scenario.Options{Table: "stock_move", Workers: 4, AppPrefix: "erp"}},
		{Scenario: "hot-row-churn", Options: scenario.Options{Table: "ir_sequence", Workers: 8, AppPrefix: "shop"}},
		{Scenario: "deadlock", Options: scenario.Options{Table: "account_move", Workers: 2, AppPrefix: "pos"}},
		{Scenario: "online-index", Options: scenario.Options{Table: "ir_attachment", Workers: 1, AppPrefix: "odoo"}},
		{Scenario: "advisory-queue", Options: scenario.Options{Table: "ir_cron", Workers: 3, AppPrefix: "jobs"}},
		{Scenario: "shared-row-lock", Options: scenario.Options{Table: "account_move", Workers: 3, AppPrefix: "crm"}},
		{Scenario: "vacuum-waits", Options: scenario.Options{Table: "mail_message", Workers: 1, AppPrefix: "odoo"}},
		{Scenario: "wraparound-vacuum", Options: scenario.Options{Table: "stock_picking", Workers: 3, AppPrefix: "wms"}},
	})
}

// kindChecks compare each new kind's analysis with its staging.
var kindChecks = map[string]func(t *testing.T, truth scenario.Truth, inc analyze.Incident){
	"prepared-root":     checkPreparedRoot,
	"hot-row-churn":     checkHotRowChurn,
	"deadlock":          checkDeadlock,
	"online-index":      checkOnlineIndex,
	"advisory-queue":    checkAdvisory,
	"shared-row-lock":   checkSharedRowLock,
	"vacuum-waits":      checkVacuumWaits,
	"wraparound-vacuum": checkWraparoundVacuum,
}

// An anti-wraparound autovacuum as root blocker is never cancelled: it
// would start again at once. The change gives way: the first action
// cancels the waiting ALTER, and the path is roll back.
func checkWraparoundVacuum(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	noHarm(t, inc)
	if inc.Kind != analyze.KindDDLLockQueue {
		t.Errorf("kind %q, want %q", inc.Kind, analyze.KindDDLLockQueue)
	}
	if len(inc.RootBlockers) != 1 || inc.RootBlockers[0].PID != truth.Root.PID || inc.RootBlockers[0].Role != analyze.RoleAutovacuum {
		t.Fatalf("root blockers %+v, want only the autovacuum worker %d", inc.RootBlockers, truth.Root.PID)
	}
	for _, a := range inc.Actions {
		if a.PID == truth.Root.PID && a.Action != analyze.ActionLeave {
			t.Errorf("action %+v on the anti-wraparound autovacuum, want leave", a)
		}
	}
	if len(inc.Actions) == 0 || inc.Actions[0].PID != truth.DDL.PID || inc.Actions[0].Action != analyze.ActionCancel {
		t.Errorf("first action %+v, want cancel of the waiting ALTER %d", inc.Actions, truth.DDL.PID)
	}
	if d := inc.DDL; d == nil || d.PID != truth.DDL.PID || d.Outcome != analyze.OutcomeCancelled {
		t.Errorf("DDL %+v, want the ALTER %d cancelled", inc.DDL, truth.DDL.PID)
	}
	if inc.Runbook.Path != analyze.PathRollBack {
		t.Errorf("path %q (%s), want roll back", inc.Runbook.Path, inc.Runbook.PathEvidence)
	}
}

// A row held by several transactions (a multixact): the writer waits for
// each member in turn, and every member that blocked is named.
func checkSharedRowLock(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	noHarm(t, inc)
	if inc.Kind != analyze.KindRowLock {
		t.Errorf("kind %q, want %q", inc.Kind, analyze.KindRowLock)
	}
	got := rootPIDs(inc.RootBlockers)
	slices.Sort(got)
	var want []int32
	for _, m := range truth.Members {
		want = append(want, m.PID)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("root blockers %v, want every member of the shared row lock %v", got, want)
	}
	for _, a := range inc.Actions {
		if !slices.Contains(want, a.PID) || a.Action != analyze.ActionTerminate {
			t.Errorf("action %+v, want terminate on the idle members only", a)
		}
	}
	if inc.Contention == nil || inc.Contention.Churn || !strings.Contains(inc.Contention.Object, truth.Table) {
		t.Errorf("contention %+v, want a persistent hold on a row of %s", inc.Contention, truth.Table)
	}
}

func checkVacuumWaits(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	noHarm(t, inc)
	if inc.Kind != analyze.KindMaintenance {
		t.Errorf("kind %q, want %q", inc.Kind, analyze.KindMaintenance)
	}
	if d := inc.DDL; d == nil || d.PID != truth.DDL.PID || d.Class != analyze.DDLMaintenance || d.Mode != truth.DDLMode || d.Relation != truth.Table {
		t.Errorf("DDL %+v, want the VACUUM %d waiting for %s on %s", inc.DDL, truth.DDL.PID, truth.DDLMode, truth.Table)
	}
	if got := rootPIDs(inc.RootBlockers); len(got) != 1 || got[0] != truth.Root.PID {
		t.Errorf("root blockers %v, want %d", got, truth.Root.PID)
	}
	if len(inc.Actions) == 0 || inc.Actions[0].PID != truth.Root.PID || inc.Actions[0].Action != analyze.ActionTerminate {
		t.Errorf("first action %+v, want terminate of the idle holder %d", inc.Actions, truth.Root.PID)
	}
}

// noHarm: no action signals pid 0, and none cancels or terminates a
// protected session.
func noHarm(t *testing.T, inc analyze.Incident) {
	t.Helper()
	for _, a := range inc.Actions {
		if a.PID == 0 && (a.Action == analyze.ActionCancel || a.Action == analyze.ActionTerminate) {
			t.Errorf("an action on pid 0, which has no backend: %+v", a)
		}
		for _, p := range inc.Protected {
			if p.PID == a.PID && a.Action != analyze.ActionLeave {
				t.Errorf("an action on the protected session %d: %+v", p.PID, a)
			}
		}
		if a.Action != analyze.ActionLeave && (a.SQL == "" || a.Evidence == "") {
			t.Errorf("an action without its SQL or its evidence: %+v", a)
		}
	}
}

func checkPreparedRoot(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	noHarm(t, inc)
	if inc.Kind != analyze.KindDDLLockQueue {
		t.Errorf("kind %q, want %q", inc.Kind, analyze.KindDDLLockQueue)
	}
	if len(inc.RootBlockers) != 1 || inc.RootBlockers[0].PID != 0 || inc.RootBlockers[0].GID != truth.RootGID {
		t.Fatalf("root blockers %+v, want only the prepared transaction %q", inc.RootBlockers, truth.RootGID)
	}
	r := inc.RootBlockers[0]
	if r.Role != analyze.RolePrepared || r.User == "" || r.Database == "" || r.XactStart == nil || len(r.Locks) == 0 {
		t.Errorf("prepared root without its role, owner, database, prepared time or locks: %+v", r)
	}
	a := inc.Actions[0]
	want := "ROLLBACK PREPARED '" + strings.ReplaceAll(truth.RootGID, "'", "''") + "';"
	if a.Action != analyze.ActionRollbackPrepared || a.GID != truth.RootGID || a.SQL != want || a.Database != r.Database {
		t.Errorf("first action %+v, want rollback_prepared %s in database %s", a, want, r.Database)
	}
	if inc.DDL == nil || inc.DDL.PID != truth.DDL.PID {
		t.Errorf("DDL %+v, want pid %d", inc.DDL, truth.DDL.PID)
	}
	if !slices.ContainsFunc(inc.Advice, func(a analyze.Advice) bool { return strings.Contains(a.Advice, "pg_prepared_xacts") }) {
		t.Errorf("no advice to watch prepared transactions: %+v", inc.Advice)
	}
}

func checkHotRowChurn(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	if inc.Kind != analyze.KindHotRow {
		t.Errorf("kind %q, want %q (roots %v)", inc.Kind, analyze.KindHotRow, rootPIDs(inc.RootBlockers))
	}
	for _, a := range inc.Actions {
		if a.Action != analyze.ActionLeave {
			t.Errorf("a session action on churn: %+v", a)
		}
	}
	if len(inc.RootBlockers) != 0 {
		t.Errorf("transient holders named as root blockers: %v", rootPIDs(inc.RootBlockers))
	}
	c := inc.Contention
	if c == nil || !c.Churn || c.ChurnHolders < 2 || !strings.Contains(c.Object, truth.Table) {
		t.Fatalf("contention %+v, want churn on a row of %s", c, truth.Table)
	}
	// Waits are timed from pg_locks.waitstart (PostgreSQL 14+); before
	// that only from the samples, where a wait seen once counts as 0 s
	// ("at least this long").
	if c.Waits < len(truth.Waiters) || c.WaitsPerSecond <= 0 || c.MaxWait < 0 || c.P95Wait > c.MaxWait || len(c.Statements) == 0 {
		t.Errorf("contention figures %+v", c)
	}
	if !slices.ContainsFunc(inc.Advice, func(a analyze.Advice) bool { return strings.Contains(a.Advice, "sequence") }) {
		t.Errorf("no advice to replace the counter row by a sequence: %+v", inc.Advice)
	}
	if inc.DDL != nil {
		t.Errorf("a DDL where there was none: %+v", inc.DDL)
	}
}

func checkDeadlock(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	if inc.Kind != analyze.KindDeadlock {
		t.Errorf("kind %q, want deadlock", inc.Kind)
	}
	if len(inc.Actions) != 0 {
		t.Errorf("containment for a deadlock PostgreSQL resolves itself: %+v", inc.Actions)
	}
	d := inc.Deadlock
	if d == nil {
		t.Fatal("no deadlock cycle")
	}
	var got, want []int32
	for _, m := range d.Members {
		got = append(got, m.PID)
		if m.WaitsFor == "" || m.HeldBy == 0 {
			t.Errorf("cycle member without its lock: %+v", m)
		}
	}
	for _, m := range truth.Cycle {
		want = append(want, m.PID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("cycle %v, want %v", got, want)
	}
	if d.Victim != truth.Victim.PID {
		t.Errorf("victim %d (%s), want %d", d.Victim, d.VictimEvidence, truth.Victim.PID)
	}
	if d.Stood <= 0 {
		t.Errorf("cycle stood %.3f s", d.Stood)
	}
	if len(inc.Advice) == 0 || !strings.Contains(inc.Advice[0].Advice, "order") {
		t.Errorf("advice %+v, want a consistent lock order", inc.Advice)
	}
}

func checkOnlineIndex(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	noHarm(t, inc)
	if inc.Kind != analyze.KindOnlineDDL {
		t.Errorf("kind %q, want %q", inc.Kind, analyze.KindOnlineDDL)
	}
	d := inc.DDL
	if d == nil || d.PID != truth.DDL.PID || d.Class != analyze.DDLOnline || d.Relation != truth.Table || !strings.Contains(d.WaitPhase, "older transaction") {
		t.Fatalf("DDL %+v, want the online index build %d on %s", d, truth.DDL.PID, truth.Table)
	}
	if got := rootPIDs(inc.RootBlockers); len(got) != 1 || got[0] != truth.Root.PID {
		t.Errorf("root blockers %v, want the old transaction %d", got, truth.Root.PID)
	}
	if len(inc.Actions) == 0 || inc.Actions[0].PID != truth.Root.PID || inc.Actions[0].Action != analyze.ActionTerminate {
		t.Errorf("first action %+v, want terminate of the idle old transaction %d", inc.Actions, truth.Root.PID)
	}
}

func checkAdvisory(t *testing.T, truth scenario.Truth, inc analyze.Incident) {
	noHarm(t, inc)
	if inc.Kind != analyze.KindAdvisory {
		t.Errorf("kind %q, want %q", inc.Kind, analyze.KindAdvisory)
	}
	if got := rootPIDs(inc.RootBlockers); len(got) != 1 || got[0] != truth.Root.PID {
		t.Errorf("root blockers %v, want %d", got, truth.Root.PID)
	}
	for _, w := range inc.Waiters {
		if w.Target != truth.Object {
			t.Errorf("waiter %d waits for %q, want %q", w.PID, w.Target, truth.Object)
		}
	}
	if len(inc.Relations) != 0 {
		t.Errorf("an advisory lock named as relations %v", inc.Relations)
	}
	if inc.Contention == nil || inc.Contention.Object != truth.Object {
		t.Errorf("contention %+v, want object %q", inc.Contention, truth.Object)
	}
	if len(inc.Actions) == 0 || inc.Actions[0].PID != truth.Root.PID || inc.Actions[0].Action != analyze.ActionTerminate {
		t.Errorf("first action %+v, want terminate of the idle holder %d", inc.Actions, truth.Root.PID)
	}
}

// A session whose behaviour shows nothing specific (an UPDATE left idle in
// transaction) is told by a documented name hint, and role_evidence says
// so.
func TestRoleFromNameHint(t *testing.T) {
	pgtest.SkipIfShort(t)
	truth, res := record(t, "row-contention", scenario.Options{Table: "stock_move", Workers: 3, AppPrefix: "odoo:cron"})
	if len(res.Incidents) != 1 || len(res.Incidents[0].RootBlockers) != 1 {
		t.Fatalf("incidents %+v", res.Incidents)
	}
	r := res.Incidents[0].RootBlockers[0]
	if r.PID != truth.Root.PID || r.Role != analyze.RoleOdooCron || !strings.Contains(r.RoleEvidence, "name hint") {
		t.Errorf("root %d role %q (%s), want %d as odoo-cron from its name", r.PID, r.Role, r.RoleEvidence, truth.Root.PID)
	}
}
