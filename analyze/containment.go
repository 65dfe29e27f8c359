package analyze

import (
	"fmt"
	"slices"
	"strings"
)

// containment orders what the runbook prescribes for an incident:
// cancel before terminate; clear application and cron blockers first, the
// migration last unless it is the root blocker; never touch replication,
// backup or admin sessions.
func containment(x *Incident, inc *incState) ([]Action, []Protected) {
	protected := []Protected{}
	for _, b := range sortedProtected(inc.protected) {
		protected = append(protected, *inc.protected[b])
	}
	isProtected := func(pid int32) bool {
		return slices.ContainsFunc(protected, func(p Protected) bool { return p.PID == pid })
	}
	actions := []Action{}
	roots := slices.Clone(x.RootBlockers) // already by waiter-seconds, largest first
	// Application and cron blockers first; migrations last.
	slices.SortStableFunc(roots, func(a, b RootBlocker) int {
		return boolInt(a.Role == RoleMigration) - boolInt(b.Role == RoleMigration)
	})
	for _, r := range roots {
		a := Action{PID: r.PID, BackendStart: r.BackendStart, Role: r.Role}
		behind := fmt.Sprintf("%d sessions queued behind it at the peak, %.1f waiter-seconds", r.PeakBehind, r.WaiterSeconds)
		switch {
		case isProtected(r.PID) || protectedRole(r.Role):
			a.Action = "leave"
			a.Reason = fmt.Sprintf("root blocker, but a %s session: validate with its owner before touching it (%s)", r.Role, behind)
		case strings.HasPrefix(r.State, "idle in transaction"):
			a.Action = "terminate"
			a.Reason = fmt.Sprintf("root blocker %s: pg_cancel_backend has no running statement to cancel, only pg_terminate_backend ends the transaction and releases %s (%s)",
				r.State, describeLocks(r.Locks), behind)
		default:
			a.Action = "cancel"
			a.Reason = fmt.Sprintf("root blocker running a statement: cancel it first (pg_cancel_backend), terminate only if the queue stays frozen (%s)", behind)
		}
		if r.Role == RoleMigration && a.Action != "leave" {
			a.Reason = "the migration is the confirmed root blocker: touch it after the others, and only while the queue keeps growing; " + a.Reason
		}
		actions = append(actions, a)
	}
	if d := x.DDL; d != nil && !slices.ContainsFunc(roots, func(r RootBlocker) bool { return r.PID == d.PID }) {
		actions = append(actions, Action{PID: d.PID, BackendStart: d.BackendStart, Role: RoleMigration, Action: "leave",
			Reason: fmt.Sprintf("the DDL waits for %s on %s and %d sessions queue behind it: clear its blocker instead; cancelling it drains the queue but fails the change (the runbook touches the migration last)",
				d.Mode, d.Relation, d.QueuedBehind)})
	}
	return actions, protected
}

func describeLocks(ls []HeldLock) string {
	if len(ls) == 0 {
		return "its locks"
	}
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.Mode+" on "+l.Target)
	}
	return strings.Join(parts, ", ")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortedProtected(m map[Backend]*Protected) []Backend {
	keys := make([]Backend, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePID)
	return keys
}
