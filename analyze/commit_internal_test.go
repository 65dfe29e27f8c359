package analyze

import (
	"strings"
	"testing"

	"github.com/lockscope/lockscope/capture/recording"
)

// A migration's ALTER gets its lock inside an explicit transaction: the
// change is in place only if that transaction commits, which the
// session's last statement tells when it stays connected.
func TestDDLCommitFollowsItsTransaction(t *testing.T) {
	const alter = "ALTER TABLE stock_move ADD COLUMN x integer"
	cases := []struct {
		name       string
		end        string // the migration's last statement; "" stays open, "-" leaves
		commit     string
		path       string
		rootEnding string // the cron's, from its own COMMIT
	}{
		{"commit", "COMMIT", CommitCommitted, PathFinishForward, EndingCommitted},
		{"rollback", "ROLLBACK", CommitRolledBack, PathRollBack, EndingCommitted},
		{"savepoint rollback is no end", "ROLLBACK TO SAVEPOINT s1", CommitCannotTell, PathCannotTell, EndingCommitted},
		{"backend left", "-", CommitCannotTell, PathCannotTell, EndingCommitted},
		{"still open", "", CommitOpen, PathFinishForward, EndingCommitted},
		// Outside a transaction block the ALTER's transaction ends with
		// it, even when the session goes straight on to the next one.
		{"autocommit, then the next statement", "SELECT 1", CommitCommitted, PathFinishForward, EndingCommitted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			incs := endingsRun(t, 12, func(i int, ts int64) *snapshot {
				s := &snapshot{tick: recording.Tick{SampleID: int64(i + 1), TS: ts, Kind: recording.TickFull}}
				cron := act(10, "odoo-4101", "idle in transaction", "")
				cron.QueryStart, cron.Query = t0-1e6, "UPDATE stock_move SET id = id"
				mig := act(11, "migrate", "active", "Lock")
				mig.XactStart, mig.QueryStart, mig.Query = t0-100_000, t0, alter
				autocommit := strings.HasPrefix(c.name, "autocommit")
				if autocommit {
					mig.XactStart = t0
				}
				worker := act(12, "odoo-4300", "active", "Lock")
				worker.QueryStart, worker.Query = t0+50_000, "SELECT count(*) FROM stock_move"
				switch {
				case i < 5:
					s.locks = []recording.Lock{held(10, "RowExclusiveLock"), waiting(11, "AccessExclusiveLock", t0), waiting(12, "AccessShareLock", t0+50_000)}
					s.activity = []recording.Activity{cron, mig, worker}
					return s
				case i < 9 && autocommit: // the ALTER got its lock and is still running
					cron.State, cron.XactStart, cron.QueryStart, cron.Query, cron.StateChange = "idle", 0, t0+500_000, "COMMIT", t0+505_000
					mig.WaitEventType = ""
					s.locks = []recording.Lock{held(11, "AccessExclusiveLock")}
					s.activity = []recording.Activity{cron, mig}
					return s
				case i < 9: // the cron committed; the ALTER got its lock and the transaction goes on
					cron.State, cron.XactStart, cron.QueryStart, cron.Query, cron.StateChange = "idle", 0, t0+500_000, "COMMIT", t0+505_000
					mig.State, mig.WaitEventType, mig.StateChange = "idle in transaction", "", t0+510_000
					s.locks = []recording.Lock{held(11, "AccessExclusiveLock")}
					s.activity = []recording.Activity{cron, mig}
					return s
				}
				cron.State, cron.XactStart, cron.QueryStart, cron.Query, cron.StateChange = "idle", 0, t0+500_000, "COMMIT", t0+505_000
				switch c.end {
				case "":
					mig.State, mig.WaitEventType = "idle in transaction", ""
					s.locks = []recording.Lock{held(11, "AccessExclusiveLock")}
					s.activity = []recording.Activity{cron, mig}
				case "-":
					s.activity = []recording.Activity{cron}
				case "SELECT 1": // the next statement, in a transaction of its own
					mig.State, mig.WaitEventType, mig.XactStart = "active", "", t0+850_000
					mig.QueryStart, mig.Query = t0+850_000, c.end
					s.activity = []recording.Activity{cron, mig}
				default:
					mig.State, mig.WaitEventType, mig.XactStart = "idle", "", 0
					mig.QueryStart, mig.Query, mig.StateChange = t0+850_000, c.end, t0+851_000
					s.activity = []recording.Activity{cron, mig}
				}
				return s
			})
			if len(incs) != 1 || incs[0].DDL == nil {
				t.Fatalf("incidents %+v", incs)
			}
			x := incs[0]
			d := x.DDL
			if d.Outcome != OutcomeGranted {
				t.Fatalf("DDL outcome %q (%s), want granted", d.Outcome, d.Evidence)
			}
			if d.Commit != c.commit || d.CommitEvidence == "" {
				t.Errorf("commit %q (%s), want %q", d.Commit, d.CommitEvidence, c.commit)
			}
			if x.Runbook.Path != c.path {
				t.Errorf("path %q (%s), want %q", x.Runbook.Path, x.Runbook.PathEvidence, c.path)
			}
			if r := x.RootBlockers[0]; r.Ending != c.rootEnding || !strings.Contains(r.EndingEvidence, "COMMIT at") {
				t.Errorf("root ending %q (%s), want %q", r.Ending, r.EndingEvidence, c.rootEnding)
			}
		})
	}
}

// A root blocker's last statement tells how its transaction ended only
// when it ran after the transaction was last seen open, and only when it
// ends the transaction.
func TestLastStatementEnds(t *testing.T) {
	const lastOpen = t0
	cases := []struct {
		prev, state, query string
		queryStart         int64
		want               string
	}{
		{"idle in transaction", "idle", "COMMIT", t0 + 10, EndingCommitted},
		{"idle in transaction", "idle", "end;", t0 + 10, EndingCommitted},
		{"idle in transaction", "idle", "rollback", t0 + 10, EndingRolledBack},
		{"idle in transaction (aborted)", "idle", "COMMIT", t0 + 10, EndingRolledBack},
		{"idle in transaction", "idle", "COMMIT", t0 - 10, ""},                  // before it was seen open: not this transaction's end
		{"idle in transaction", "idle", "ROLLBACK TO SAVEPOINT a", t0 + 10, ""}, // ends nothing
		{"idle in transaction", "idle", "COMMIT PREPARED 'x'", t0 + 10, ""},
		{"idle in transaction", "idle", "SELECT 1", t0 + 10, ""},
		{"idle in transaction", "idle in transaction", "COMMIT", t0 + 10, ""},
	}
	for _, c := range cases {
		a := &recording.Activity{State: c.state, Query: c.query, QueryStart: c.queryStart}
		if got, ev := lastStatementEnds(c.prev, lastOpen, a); got != c.want || (got != "" && ev == "") {
			t.Errorf("%q then %q (%q): %q (%s), want %q", c.prev, c.query, c.state, got, ev, c.want)
		}
	}
}

// A statement cancelled (or failed) inside a transaction block aborts the
// transaction, which releases its locks at once: the root blocker rolled
// back, even though its session still shows a transaction.
func TestRootAbortedInItsTransaction(t *testing.T) {
	incs := endingsRun(t, 8, func(i int, ts int64) *snapshot {
		s := &snapshot{tick: recording.Tick{SampleID: int64(i + 1), TS: ts, Kind: recording.TickFull}}
		report := act(10, "bi-export", "active", "")
		report.XactStart, report.QueryStart, report.Query = t0-2e6, t0-1e6, "SELECT count(*) FROM stock_move"
		mig := act(11, "migrate", "active", "Lock")
		mig.XactStart, mig.QueryStart, mig.Query = t0, t0, "ALTER TABLE stock_move ADD COLUMN x integer"
		if i < 5 {
			s.locks = []recording.Lock{held(10, "AccessShareLock"), waiting(11, "AccessExclusiveLock", t0)}
			s.activity = []recording.Activity{report, mig}
			return s
		}
		report.State, report.XactStart, report.StateChange = "idle in transaction (aborted)", 0, t0+450_000
		mig.State, mig.WaitEventType, mig.XactStart, mig.StateChange = "idle", "", 0, t0+460_000
		s.activity = []recording.Activity{report, mig}
		return s
	})
	if len(incs) != 1 || len(incs[0].RootBlockers) != 1 {
		t.Fatalf("incidents %+v", incs)
	}
	if r := incs[0].RootBlockers[0]; r.Ending != EndingRolledBack || !strings.Contains(r.EndingEvidence, "aborted") {
		t.Errorf("root ending %q (%s), want rolled_back: an aborted transaction holds no locks and commits nothing", r.Ending, r.EndingEvidence)
	}
}
