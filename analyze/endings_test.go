package analyze

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/lockscope/lockscope/capture/recording"
)

// endingsRun feeds samples built by mk(i) every 100 ms and returns the
// incidents.
func endingsRun(t *testing.T, n int, mk func(i int, ts int64) *snapshot) []Incident {
	t.Helper()
	tr := newTracker(0, 0, map[int64]string{16400: "stock_move"}, nil)
	for i := range n {
		s := mk(i, t0+int64(i)*100_000)
		tr.noticeStatements(s.activity)
		tr.observe(buildGraph(s, len(tr.open) == 0 && !tr.following()))
	}
	return tr.finish(nil)
}

func held(pid int32, mode string) recording.Lock {
	return recording.Lock{LockType: "relation", Database: i64(5), Relation: 16400, PID: pid, Mode: mode, Granted: true}
}

func waiting(pid int32, mode string, ts int64) recording.Lock {
	return recording.Lock{LockType: "relation", Database: i64(5), Relation: 16400, PID: pid, Mode: mode, WaitStart: ts}
}

// A migration seen running its ALTER before anyone waited, then another
// statement while the lock is held: "the DDL" is the ALTER, and the draft
// says the statement running when the queue formed did not take it.
func TestHeldDDLLockStatement(t *testing.T) {
	incs := endingsRun(t, 8, func(i int, ts int64) *snapshot {
		mig := act(10, "odoo-4500", "active", "")
		mig.XactStart, mig.QueryStart, mig.Query = t0-2e6, t0, "ALTER TABLE stock_move ADD COLUMN x integer"
		s := &snapshot{tick: recording.Tick{SampleID: int64(i + 1), TS: ts, Kind: recording.TickFull}}
		if i >= 2 {
			mig.QueryStart, mig.Query = t0+150_000, "SELECT pg_sleep(4)"
		}
		s.activity = []recording.Activity{mig}
		s.locks = []recording.Lock{held(10, "AccessExclusiveLock")}
		if i >= 2 && i < 7 {
			w := act(20, "odoo-4300", "active", "Lock")
			s.activity = append(s.activity, w)
			s.locks = append(s.locks, waiting(20, "AccessShareLock", t0+200_000))
		}
		return s
	})
	if len(incs) != 1 || incs[0].DDL == nil {
		t.Fatalf("incidents %+v", incs)
	}
	d := incs[0].DDL
	if d.Outcome != OutcomeHeld || !strings.HasPrefix(d.LockStatement, "ALTER TABLE stock_move") || d.Query != "SELECT pg_sleep(4)" {
		t.Errorf("DDL outcome %q, lock statement %q, query %q", d.Outcome, d.LockStatement, d.Query)
	}
	if !strings.Contains(d.QueryNote, "taken earlier in its transaction") || d.XactStart == nil {
		t.Errorf("query note %q, xact_start %v", d.QueryNote, d.XactStart)
	}
}

// A DDL waits behind an idle transaction; the holder commits (its COMMIT
// ends at state_change) and the DDL's statement ends just before it: it
// gave up — a lock_timeout — even though the holder was gone by the next
// sample; then the same statement runs again, unseen waiting, and
// finishes: that attempt got the lock.
func TestRetryAfterTimeoutThatRacedTheCommit(t *testing.T) {
	const alter = "ALTER TABLE stock_move ADD COLUMN x integer"
	incs := endingsRun(t, 14, func(i int, ts int64) *snapshot {
		s := &snapshot{tick: recording.Tick{SampleID: int64(i + 1), TS: ts, Kind: recording.TickFull}}
		cron := act(10, "odoo-4101", "idle in transaction", "")
		cron.QueryStart, cron.Query = t0-1e6, "UPDATE stock_move SET id = id"
		mig := act(11, "odoo-4500", "active", "Lock")
		mig.XactStart, mig.QueryStart, mig.Query = t0, t0, alter
		switch {
		case i < 5: // first attempt waits
			s.locks = []recording.Lock{held(10, "RowExclusiveLock"), waiting(11, "AccessExclusiveLock", t0)}
		case i == 5: // timed out at +520 ms; the cron committed at +530 ms
			mig.State, mig.WaitEventType, mig.StateChange, mig.XactStart = "idle", "", t0+520_000, 0
			cron.State, cron.XactStart, cron.QueryStart, cron.Query, cron.StateChange = "idle", 0, t0+525_000, "COMMIT", t0+530_000
		default: // the retry at +560 ms ran and finished without waiting
			mig.State, mig.WaitEventType, mig.XactStart = "idle", "", 0
			mig.QueryStart, mig.StateChange = t0+560_000, t0+570_000
			cron.State, cron.XactStart, cron.QueryStart, cron.Query, cron.StateChange = "idle", 0, t0+525_000, "COMMIT", t0+530_000
		}
		s.activity = []recording.Activity{cron, mig}
		return s
	})
	if len(incs) != 1 || incs[0].DDL == nil {
		t.Fatalf("incidents %+v", incs)
	}
	d := incs[0].DDL
	if d.Outcome != OutcomeGranted || d.Attempts != 2 || len(d.AttemptLog) != 2 {
		t.Fatalf("DDL %q after %d attempts (%s); log %+v", d.Outcome, d.Attempts, d.Evidence, d.AttemptLog)
	}
	if a := d.AttemptLog[0]; a.Outcome != OutcomeGaveUp || !strings.Contains(a.Evidence, "before its blockers released") {
		t.Errorf("first attempt %+v, want given up before the commit", a)
	}
	if a := d.AttemptLog[1]; a.Waited != 0 || !strings.Contains(a.Evidence, "without being seen waiting") {
		t.Errorf("second attempt %+v", a)
	}
	if r := incs[0].RootBlockers[0]; r.Ending != EndingCommitted || r.Outcome != "released" {
		t.Errorf("root ending %q (%s), outcome %q", r.Ending, r.EndingEvidence, r.Outcome)
	}
}

// A root blocker whose backend leaves between two samples, with no
// statement seen terminating it, is "left": the draft must not call it
// terminated; the DDL whose backend left in that interval is
// completed_or_terminated.
func TestBackendsGoneBetweenSamples(t *testing.T) {
	incs := endingsRun(t, 8, func(i int, ts int64) *snapshot {
		s := &snapshot{tick: recording.Tick{SampleID: int64(i + 1), TS: ts, Kind: recording.TickFull}}
		if i < 5 {
			s.activity = []recording.Activity{act(10, "odoo-4101", "idle in transaction", ""), act(11, "odoo-4200", "active", "Lock")}
			s.locks = []recording.Lock{held(10, "RowExclusiveLock"), waiting(11, "AccessExclusiveLock", t0)}
		}
		return s
	})
	if len(incs) != 1 || incs[0].DDL == nil {
		t.Fatalf("incidents %+v", incs)
	}
	inc := incs[0]
	if r := inc.RootBlockers[0]; r.Ending != EndingLeft || r.Outcome != "gone" || !r.Ended {
		t.Errorf("root %q/%q ended=%v: %s", r.Ending, r.Outcome, r.Ended, r.EndingEvidence)
	}
	if inc.DDL.Outcome != OutcomeCompletedOrTerminated || inc.Runbook.Path != PathCannotTell {
		t.Errorf("DDL %q, path %q", inc.DDL.Outcome, inc.Runbook.Path)
	}
	for _, line := range inc.Runbook.Done {
		if strings.Contains(line, "pg_terminate_backend") {
			t.Errorf("what was done invents a terminate: %q", line)
		}
	}
}

// The statements an operator runs name their target in the text: a pid
// typed into the call, or the runbook's form with the pid in WHERE; a
// bound parameter names no one the recording can see.
func TestOperatorStatements(t *testing.T) {
	tr := newTracker(0, 0, nil, nil)
	g := &graph{ts: t0, backends: map[Backend]*recording.Activity{}}
	for i, q := range []string{
		"SELECT pg_terminate_backend(4101)",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = 4102 AND backend_start = '2026-11-29 19:43:03.537067+00';",
		"select pg_cancel_backend($1)",
		"ROLLBACK PREPARED 'erp:it''s:1'",
		"SELECT 1 -- pg_stat_activity",
	} {
		a := act(int32(50+i), "psql", "idle", "")
		a.Query, a.QueryStart = q, t0-int64(i+1)*1000
		g.backends[Backend{a.PID, a.BackendStart}] = &a
	}
	tr.noticeOperators(g)
	tr.noticeOperators(g) // seen again in the next sample: counted once
	got := map[string]bool{}
	for _, op := range tr.ops {
		got[fmt.Sprintf("%s %d %s", op.Action, op.Target, op.GID)] = true
	}
	want := map[string]bool{"terminate 4101 ": true, "terminate 4102 ": true, "cancel 0 ": true, "rollback_prepared 0 erp:it's:1": true}
	if len(tr.ops) != len(want) || !maps.Equal(got, want) {
		t.Errorf("operator statements %v, want %v", got, want)
	}
}
