package analyze

import (
	"fmt"
	"slices"
	"strings"
)

// HotTables are the Odoo tables the runbook names as DDL choke points, and
// the others that every request touches.
var HotTables = []string{"account_move", "account_move_line", "stock_move", "stock_move_line", "stock_quant",
	"sale_order", "sale_order_line", "ir_attachment", "mail_message", "ir_cron", "bus_bus"}

// Runbook answers the on-call runbook's questions from the recording
// (runbook-odoo-ddl-lock-queue: incident signals, triage checklist,
// finish-forward or roll back, verification).
type Runbook struct {
	Signals      []Check `json:"signals"`
	Triage       []Check `json:"triage"`
	Path         string  `json:"path"` // finish-forward or roll back
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
	hot := hotRelations(x.Relations)
	if d := x.DDL; d != nil {
		rb.Signals = append(rb.Signals, Check{
			Question: "a migration/DDL statement waiting or holding a lock on a hot table",
			Answer:   yesNo(slices.Contains(HotTables, bareName(d.Relation))),
			Evidence: fmt.Sprintf("pid %d %s %s on %s: %s", d.PID, ddlVerb(d), d.Mode, d.Relation, oneLine(d.Query, 120)),
		})
	} else {
		rb.Signals = append(rb.Signals, Check{Question: "a migration/DDL statement waiting or holding a lock on a hot table", Answer: "no",
			Evidence: "no write-blocking relation lock was requested or held (" + x.Kind + ")"})
	}
	rb.Signals = append(rb.Signals,
		Check{Question: "lock timeout or statement timeout spikes in the logs", Answer: "unknown", Evidence: "server and application logs are not in the recording"})

	// Triage checklist.
	if d := x.DDL; d != nil {
		rb.Triage = append(rb.Triage, Check{Question: "is a DDL requesting or holding AccessExclusiveLock on a hot table?",
			Answer:   yesNo(d.Mode == "AccessExclusiveLock" && len(hot) > 0),
			Evidence: fmt.Sprintf("%s %s on %s", ddlVerb(d), d.Mode, d.Relation)})
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

	// Finish forward or roll back.
	switch {
	case x.DDL != nil && len(x.Actions) > 0 && x.Actions[0].PID == x.DDL.PID && x.Actions[0].Action == ActionCancel:
		rb.Path, rb.PathEvidence = "roll back", "the DDL's blocker is a protected session the runbook says not to touch: stop the migration attempt and reschedule it after the protected work, with lock_timeout set"
	case x.DDL != nil && x.DDL.Outcome == OutcomeGranted:
		rb.Path, rb.PathEvidence = "finish-forward", "the DDL got its lock once its blocker was gone and the queue drained: the change went through"
	case tr == "growing":
		rb.Path, rb.PathEvidence = "roll back", "the queue kept growing while the DDL waited: stop the attempt and reschedule it with lock_timeout in a quiet window"
	case x.DDL != nil && x.DDL.Outcome == OutcomeHeld:
		rb.Path, rb.PathEvidence = "finish-forward", "the migration held the lock itself: let it commit quickly (or roll it back) and rerun with lock_timeout"
	case x.DDL == nil:
		rb.Path, rb.PathEvidence = "n/a", "no schema change involved"
	default:
		rb.Path, rb.PathEvidence = "finish-forward", "the queue was not growing: clear the blocker and let the change complete under a lock_timeout"
	}

	// What was done.
	for _, r := range x.RootBlockers {
		switch {
		case r.Gone == nil:
			rb.Done = append(rb.Done, fmt.Sprintf("root blocker pid %d was still blocking when the recording ends", r.PID))
		default:
			after := r.Gone.Sub(x.Start).Seconds()
			how := "released its locks (commit, rollback or a cancelled statement) and stayed connected"
			if r.GID != "" {
				rb.Done = append(rb.Done, fmt.Sprintf("the prepared transaction '%s' (root blocker, pid 0) was finished — ROLLBACK PREPARED or COMMIT PREPARED — at %s, %.1f s after the queue formed",
					r.GID, r.Gone.Format("15:04:05"), r.Gone.Sub(x.Start).Seconds()))
				continue
			}
			if r.Ended {
				how = "went away (pg_terminate_backend, or its client disconnected)"
			}
			rb.Done = append(rb.Done, fmt.Sprintf("root blocker pid %d %s at %s, %.1f s after the queue formed", r.PID, how, r.Gone.Format("15:04:05"), after))
		}
	}

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

func hotRelations(rels []string) []string {
	var out []string
	for _, r := range rels {
		if slices.Contains(HotTables, bareName(r)) {
			out = append(out, r)
		}
	}
	return out
}

// bareName strips a schema qualification.
func bareName(rel string) string {
	if i := strings.LastIndexByte(rel, '.'); i >= 0 {
		return rel[i+1:]
	}
	return rel
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
