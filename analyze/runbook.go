package analyze

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// HotTables are the Odoo tables the runbook names as DDL choke points, and
// the others that every request touches.
var HotTables = []string{"account_move", "account_move_line", "stock_move", "stock_move_line", "stock_quant",
	"sale_order", "sale_order_line", "ir_attachment", "mail_message", "ir_cron", "bus_bus"}

// Runbook answers the on-call runbook's questions from the recording
// (runbook-odoo-ddl-lock-queue: incident signals, triage checklist,
// finish-forward or roll back, verification).
type Runbook struct {
	Signals []Check `json:"signals"`
	Triage  []Check `json:"triage"`
	// Path is what happened to the change: finish-forward (it went
	// through), roll back (it did not), cannot tell, or n/a.
	Path         string  `json:"path"`
	PathEvidence string  `json:"path_evidence"`
	Verification []Check `json:"verification"`
	// Done is what the recording shows was done about the root
	// blockers, and how long after the queue formed.
	Done []string `json:"done"`
}

// Check is one question with its answer and the evidence.
type Check struct {
	Question string `json:"question"`
	// Answer is yes, no, or unknown (the recording cannot tell).
	Answer   string `json:"answer"`
	Evidence string `json:"evidence"`
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// trend compares the number of waiters in the first and second half of
// the stretch before t (µs): "growing", "draining" or "steady".
func trend(series []point, from, to int64) (string, int, int) {
	mid := from + (to-from)/2
	var a, b, na, nb int
	for _, p := range series {
		switch {
		case p.ts >= from && p.ts < mid:
			a += p.waiters
			na++
		case p.ts >= mid && p.ts <= to:
			b += p.waiters
			nb++
		}
	}
	if na == 0 || nb == 0 {
		return "steady", 0, 0
	}
	ma, mb := a/na, b/nb
	switch {
	case mb > ma+max(1, ma/10):
		return "growing", ma, mb
	case mb < ma-max(1, ma/10):
		return "draining", ma, mb
	}
	return "steady", ma, mb
}

// runbook walks the runbook through one exported incident.
func runbook(x *Incident, inc *incState, pendingModules []string) Runbook {
	var rb Runbook
	// Incident signals.
	rb.Signals = append(rb.Signals, Check{
		Question: "many sessions waiting with wait_event_type = 'Lock'",
		Answer:   yesNo(x.PeakWaiters >= 3),
		Evidence: fmt.Sprintf("peak %d waiting at %s; %.1f waiter-seconds over %.1f s", x.PeakWaiters, x.PeakAt.Format("15:04:05"), x.WaiterSeconds, x.Duration),
	})
	if d := x.DDL; d != nil {
		hot, why := hotTable(d)
		rb.Signals = append(rb.Signals, Check{
			Question: "a migration/DDL statement waiting or holding a lock on a hot table",
			Answer:   yesNo(hot),
			Evidence: fmt.Sprintf("pid %d %s %s on %s (%s): %s", d.PID, ddlVerb(d), d.Mode, d.Relation, why, oneLine(d.Query, 120)),
		})
	} else {
		rb.Signals = append(rb.Signals, Check{Question: "a migration/DDL statement waiting or holding a lock on a hot table", Answer: "no",
			Evidence: "no write-blocking relation lock was requested or held (" + x.Kind + ")"})
	}
	rb.Signals = append(rb.Signals,
		Check{Question: "lock timeout or statement timeout spikes in the logs", Answer: "unknown", Evidence: "server and application logs are not in the recording"})

	// Triage checklist.
	if d := x.DDL; d != nil {
		hot, why := hotTable(d)
		rb.Triage = append(rb.Triage, Check{Question: "is a DDL requesting or holding AccessExclusiveLock on a hot table?",
			Answer:   yesNo(d.Mode == "AccessExclusiveLock" && hot),
			Evidence: fmt.Sprintf("%s %s on %s (%s)", ddlVerb(d), d.Mode, d.Relation, why)})
	} else {
		rb.Triage = append(rb.Triage, Check{Question: "is a DDL requesting or holding AccessExclusiveLock on a hot table?", Answer: "no", Evidence: x.Kind})
	}
	var from []string
	for _, r := range x.RootBlockers {
		from = append(from, fmt.Sprintf("pid %d is %s (%s)", r.PID, r.Role, r.RoleEvidence))
	}
	migrationRoot := slices.ContainsFunc(x.RootBlockers, func(r RootBlocker) bool { return r.Role == RoleMigration })
	answer := "workers/cron"
	if migrationRoot {
		answer = "the migration itself"
	}
	rb.Triage = append(rb.Triage, Check{Question: "are the blockers Odoo workers/cron, or the migration session itself?", Answer: answer, Evidence: strings.Join(from, "; ")})
	// Growing or draining, over the stretch before the first root went
	// away (or before the end of the recording).
	cut := inc.lastSeen
	for _, r := range inc.roots {
		if r.gone != 0 && r.gone < cut {
			cut = r.gone
		}
	}
	tr, before, after := trend(inc.series, inc.start, cut)
	rb.Triage = append(rb.Triage, Check{Question: "is the lock queue growing (more waiters every sample) or draining?", Answer: tr,
		Evidence: fmt.Sprintf("on average %d waiting in the first half of the queue's life before containment, %d in the second", before, after)})

	// Finish forward or roll back: what happened to the change.
	rb.Path, rb.PathEvidence = changePath(x, tr)

	// What was done: only what the recording shows.
	rb.Done = done(x)

	// Verification.
	rb.Verification = append(rb.Verification, Check{Question: "lock waiters back to zero", Answer: yesNo(x.End != nil),
		Evidence: endEvidence(x)})
	aeLeft := x.End == nil && x.DDL != nil && x.DDL.Mode == "AccessExclusiveLock" && x.DDL.Outcome == OutcomeStillWaiting
	rb.Verification = append(rb.Verification, Check{Question: "no AccessExclusiveLock waiters left", Answer: yesNo(!aeLeft), Evidence: endEvidence(x)})
	if pendingModules != nil {
		rb.Verification = append(rb.Verification, Check{Question: "no module stuck in to install / to upgrade / to remove",
			Answer: yesNo(len(pendingModules) == 0), Evidence: modulesEvidence(pendingModules)})
	} else {
		rb.Verification = append(rb.Verification, Check{Question: "no module stuck in to install / to upgrade / to remove",
			Answer: "unknown", Evidence: "the database has no ir_module_module table, or it was not sampled"})
	}
	return rb
}

func endEvidence(x *Incident) string {
	if x.End == nil {
		return "the queue had not drained when the recording ends"
	}
	return "no waiter in the sample at " + x.End.Format("15:04:05.000")
}

func modulesEvidence(m []string) string {
	if len(m) == 0 {
		return "the last module poll of the recording found none pending"
	}
	return "pending at the end of the recording: " + strings.Join(m, ", ")
}

func ddlVerb(d *DDL) string {
	if d.Outcome == OutcomeHeld {
		return "holds"
	}
	return "requests"
}

// hotTable says whether the DDL's table is hot, and why: a table is hot
// when the recording shows other sessions queued for it behind the DDL,
// whatever its name, or when the runbook names it as one every request
// touches.
func hotTable(d *DDL) (bool, string) {
	switch {
	case d.QueuedBehind > 0:
		return true, fmt.Sprintf("%d session(s) queued for it behind the DDL", d.QueuedBehind)
	case slices.Contains(HotTables, bareName(d.Relation)):
		return true, "a table the runbook names as hot; no session was seen queued behind the DDL"
	}
	return false, "no session was seen queued behind the DDL"
}

// bareName strips a schema qualification.
func bareName(rel string) string {
	if i := strings.LastIndexByte(rel, '.'); i >= 0 {
		return rel[i+1:]
	}
	return rel
}

// Paths of a change.
const (
	PathFinishForward = "finish-forward"
	PathRollBack      = "roll back"
	PathCannotTell    = "cannot tell"
	PathNone          = "n/a"
)

// changePath says what happened to the change, from the DDL's outcome
// (and, when the DDL held the lock itself, from how its transaction
// ended); while it still waits, what the runbook advises.
func changePath(x *Incident, trend string) (string, string) {
	d := x.DDL
	if d == nil {
		return PathNone, "no schema change involved"
	}
	switch d.Outcome {
	case OutcomeGranted:
		got := "the DDL got its lock (" + d.Evidence + ")"
		switch d.Commit {
		case CommitRolledBack:
			return PathRollBack, got + ", but its transaction was rolled back (" + d.CommitEvidence + "): the change is not in place; rerun it with a lock_timeout and retries, in a quiet window"
		case CommitCannotTell:
			return PathCannotTell, got + ", and the recording cannot tell whether its transaction committed (" + d.CommitEvidence + "): check whether the change is in place before running it again"
		case CommitOpen:
			return PathFinishForward, got + " and the recording ends with its transaction still open: the runbook says let it commit quickly (or roll it back) and rerun with lock_timeout"
		case CommitCommitted:
			return PathFinishForward, got + " and its transaction committed: the change went through"
		}
		return PathFinishForward, got + ": the change went through"
	case OutcomeGaveUp, OutcomeCancelled, OutcomeLockTimeout, OutcomeTerminated, OutcomeLeftWaiting:
		return PathRollBack, "the DDL " + outcomeWords(d.Outcome) + " without getting its lock: its statement was rolled back and the change is not in place; rerun it with a lock_timeout and retries, in a quiet window"
	case OutcomeUnknown:
		return PathCannotTell, "the DDL's wait ended in the same interval as its blockers released, and the recording cannot tell whether it got its lock or gave up just before: " + checkDone(d) + " before running it again"
	case OutcomeCompletedOrTerminated:
		return PathCannotTell, "the DDL's backend went away in the same interval as its blockers released, and its lock was never seen granted: it completed, or it was terminated — " + checkDone(d) + " before running it again"
	case OutcomeStillWaiting:
		if trend == "growing" {
			return PathRollBack, "the recording ends with the DDL still waiting and the queue growing: the runbook says stop the attempt and reschedule it with lock_timeout in a quiet window"
		}
		return PathFinishForward, "the recording ends with the DDL still waiting and the queue not growing: the runbook says clear the blocker and let the change complete under a lock_timeout"
	case OutcomeHeld:
		for _, r := range x.RootBlockers {
			if r.PID != d.PID || !r.BackendStart.Equal(d.BackendStart) {
				continue
			}
			switch r.Ending {
			case EndingTerminated, EndingRolledBack, EndingCancelled:
				return PathRollBack, "the migration's own transaction, which held the lock, " + endingWords(r.Ending) + ": a terminated, cancelled or failed transaction is rolled back, so the change is not in place"
			case EndingCommitted:
				return PathFinishForward, "the migration's own transaction, which held the lock, committed (" + r.EndingEvidence + "): the change went through"
			case EndingTransactionEnded:
				return PathCannotTell, "the migration's own transaction, which held the lock, ended and the session stayed: committed or rolled back — the recording cannot tell which; check whether the change is in place before running it again"
			case EndingLeft:
				return PathCannotTell, "the migration's backend, which held the lock, went away: it committed and disconnected, or it was terminated (and rolled back) — the recording cannot tell which; check whether the change is in place"
			case EndingStillBlocking:
				return PathFinishForward, "the recording ends with the migration still holding the lock: the runbook says let it commit quickly (or roll it back) and rerun with lock_timeout"
			}
			return PathCannotTell, "the migration held the lock itself and " + endingWords(r.Ending) + "; the recording cannot tell whether the change was committed"
		}
		return PathCannotTell, "the migration held the lock itself; the recording does not show how its transaction ended"
	}
	return PathCannotTell, "the DDL's outcome is " + d.Outcome
}

// checkDone says how to find out whether the DDL ran: a schema change is
// seen in the table's definition, maintenance in the job's log.
func checkDone(d *DDL) string {
	if d.Class == DDLMaintenance {
		return "check the job's log for whether it ran (a plain VACUUM or ANALYZE of " + d.Relation + " also shows in last_vacuum or last_analyze of pg_stat_user_tables)"
	}
	return "check whether the change is in place (\\d " + d.Relation + ", the migration's log)"
}

// done lists what the recording shows happened: the operator statements
// seen, how each root blocker stopped blocking, and the DDL's end —
// nothing the runbook merely advises.
func done(x *Incident) []string {
	out := []string{}
	at := func(t time.Time) string {
		return fmt.Sprintf("%s (%s after the queue formed)", t.UTC().Format("15:04:05.000"), secs(t.Sub(x.Start).Seconds()))
	}
	for _, op := range x.Operator {
		who := "whom it named is not in the recording (a bound parameter)"
		switch {
		case op.GID != "":
			who = "prepared transaction '" + op.GID + "'"
		case op.Target != 0:
			who = fmt.Sprintf("naming pid %d", op.Target)
			for _, r := range x.RootBlockers {
				if r.PID == op.Target {
					who += ", the root blocker"
				}
			}
			if x.DDL != nil && x.DDL.PID == op.Target {
				who += ", the DDL"
			}
		}
		if op.ApplicationName == GuardApplication && op.PID == 0 {
			out = append(out, fmt.Sprintf("the capture's guard ran %q at %s: %s", op.Query, at(op.At), who))
			continue
		}
		out = append(out, fmt.Sprintf("pid %d (%s) ran %q at %s: %s", op.PID, cmpOr(op.ApplicationName, op.User, "no application name"), oneLine(op.Query, 120), at(op.At), who))
	}
	for _, r := range x.RootBlockers {
		if r.Gone == nil {
			out = append(out, fmt.Sprintf("root blocker %s was still blocking when the recording ends", rootName(r)))
			continue
		}
		out = append(out, fmt.Sprintf("root blocker %s %s, seen at %s: %s", rootName(r), endingWords(r.Ending), at(*r.Gone), r.EndingEvidence))
	}
	if d := x.DDL; d != nil && d.Outcome != OutcomeHeld {
		n := ""
		if d.Attempts > 1 {
			n = fmt.Sprintf(" (attempt %d of %d)", d.Attempts, d.Attempts)
		}
		when := ""
		if d.Settled != nil {
			when = ", seen at " + at(*d.Settled)
		}
		out = append(out, fmt.Sprintf("the DDL pid %d %s%s%s", d.PID, outcomeWords(d.Outcome), n, when))
	}
	if x.End != nil {
		out = append(out, "the queue was seen drained at "+at(*x.End))
	}
	return out
}

func secs(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}
