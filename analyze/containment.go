package analyze

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// containment orders what the runbook prescribes for an incident:
// cancel before terminate; clear application and cron blockers first, the
// migration last unless it is the root blocker; never touch replication,
// backup or admin sessions. A prepared transaction has no backend: its
// action is ROLLBACK PREPARED, never a cancel or terminate of pid 0. A
// deadlock, which PostgreSQL resolves itself, and hot-row churn, where no
// single session is the cause, get no session actions at all.
func containment(x *Incident, inc *incState) ([]Action, []Protected) {
	protected := []Protected{}
	for _, b := range sortedProtected(inc.protected) {
		protected = append(protected, *inc.protected[b])
	}
	actions := []Action{}
	if x.Kind == KindDeadlock {
		return actions, protected
	}
	isProtected := func(r RootBlocker) bool {
		return r.PID != 0 && (protectedRole(r.Role) ||
			slices.ContainsFunc(protected, func(p Protected) bool { return p.PID == r.PID && p.BackendStart.Equal(r.BackendStart) }))
	}
	roots := slices.Clone(x.RootBlockers) // already by waiter-seconds, largest first
	// Application and cron blockers first; migrations last.
	slices.SortStableFunc(roots, func(a, b RootBlocker) int {
		return boolInt(a.Role == RoleMigration) - boolInt(b.Role == RoleMigration)
	})
	protectedRoots := 0
	var leave []Action
	for _, r := range roots {
		a := Action{PID: r.PID, BackendStart: r.BackendStart, Role: r.Role, Evidence: rootEvidence(r)}
		behind := fmt.Sprintf("%d sessions queued behind it at the peak, %.1f waiter-seconds", r.PeakBehind, r.WaiterSeconds)
		switch {
		case r.PID == 0 && r.GID != "":
			a.GID, a.Database = r.GID, r.Database
			a.Action = ActionRollbackPrepared
			a.SQL = "ROLLBACK PREPARED " + quoteLiteral(r.GID) + ";"
			a.Reason = fmt.Sprintf("the root blocker is the prepared transaction %s (owner %s, database %s, prepared %.0f s before it was first seen blocking): it has no backend, so pg_cancel_backend and pg_terminate_backend cannot release %s; "+
				"run ROLLBACK PREPARED connected to database %s, or COMMIT PREPARED instead once its transaction manager confirms it must commit (%s)",
				quoteLiteral(r.GID), orUnknown(r.User), orUnknown(r.Database), r.TransactionAge, describeLocks(r.Locks), orUnknown(r.Database), behind)
		case r.PID == 0:
			a.Action = ActionLeave
			a.Reason = fmt.Sprintf("the root blocker is a prepared transaction (pid 0 in pg_blocking_pids) and the recording has no pg_prepared_xacts row for it: "+
				"find its gid with SELECT gid, database, owner, prepared FROM pg_prepared_xacts, then ROLLBACK PREPARED it in its database; cancelling or terminating pid 0 does nothing (%s)", behind)
		case r.Role == RoleAutovacuum && AntiWraparound(r.Query):
			protectedRoots++
			a.Action = ActionLeave
			a.Reason = fmt.Sprintf("root blocker, but an anti-wraparound autovacuum (%s): PostgreSQL does not cancel it for lock waiters, it must finish to protect the database from transaction ID wraparound, and a cancelled one is started again at once and blocks again; let it finish (its progress is in pg_stat_progress_vacuum) and stop the migration attempt instead (%s)",
				oneLine(r.Query, 100), behind)
		case r.Role == RoleAutovacuum:
			a.Action = ActionCancel
			a.SQL = signalSQL("pg_cancel_backend", r.PID, r.BackendStart)
			a.Reason = fmt.Sprintf("root blocker, an autovacuum worker: PostgreSQL cancels an ordinary autovacuum itself once a lock request has waited on it for deadlock_timeout; if it still blocks, cancelling it is safe — it runs again later (%s)", behind)
		case isProtected(r):
			protectedRoots++
			a.Action = ActionLeave
			a.Reason = fmt.Sprintf("root blocker, but a %s session (%s): the runbook says not to touch it; stop the migration attempt instead (%s)", r.Role, r.RoleEvidence, behind)
		case strings.HasPrefix(r.State, "idle in transaction"):
			a.Action = ActionTerminate
			a.SQL = signalSQL("pg_terminate_backend", r.PID, r.BackendStart)
			a.Reason = fmt.Sprintf("root blocker %s: pg_cancel_backend has no running statement to cancel, only pg_terminate_backend ends the transaction and releases %s (%s)",
				r.State, describeLocks(r.Locks), behind)
		case r.State == "idle":
			// Locks held outside any transaction are session-level
			// (pg_advisory_lock): no statement to cancel, no transaction
			// to end.
			a.Action = ActionTerminate
			a.SQL = signalSQL("pg_terminate_backend", r.PID, r.BackendStart)
			a.Reason = fmt.Sprintf("root blocker idle outside any transaction, still holding %s: a session-level lock (pg_advisory_lock) outlives statements and transactions, so pg_cancel_backend cannot release it; only pg_advisory_unlock from its own session or pg_terminate_backend does (%s)",
				describeLocks(r.Locks), behind)
		case advisoryOnly(r.Locks):
			a.Action = ActionCancel
			a.SQL = signalSQL("pg_cancel_backend", r.PID, r.BackendStart)
			a.Reason = fmt.Sprintf("root blocker running a statement while holding %s: cancel it first — that releases a lock taken with pg_advisory_xact_lock — and re-sample; if the waiters stay, the lock is session-level (pg_advisory_lock), which only pg_terminate_backend releases (%s)",
				describeLocks(r.Locks), behind)
		default:
			a.Action = ActionCancel
			a.SQL = signalSQL("pg_cancel_backend", r.PID, r.BackendStart)
			a.Reason = fmt.Sprintf("root blocker running a statement: cancel it first (pg_cancel_backend), terminate only if the queue stays frozen (%s)", behind)
		}
		if r.Role == RoleMigration && a.Action != ActionLeave {
			a.Reason = "the migration is the confirmed root blocker: touch it after the others, and only while the queue keeps growing; " + a.Reason
		}
		if a.Action == ActionLeave {
			leave = append(leave, a)
			continue
		}
		actions = append(actions, a)
	}
	if d := x.DDL; d != nil && d.Outcome != OutcomeHeld && !slices.ContainsFunc(roots, func(r RootBlocker) bool { return r.PID == d.PID }) {
		a := Action{PID: d.PID, BackendStart: d.BackendStart, Role: RoleMigration,
			Evidence: fmt.Sprintf("%s waited %.1f s for %s on %s; at most %d sessions queued behind it", ddlLabel(d), d.Waited, d.Mode, d.Relation, d.QueuedBehind)}
		if protectedRoots > 0 && len(actions) == 0 {
			// Nothing may be touched on the blocking side: the change
			// gives way.
			a.Action = ActionCancel
			a.SQL = signalSQL("pg_cancel_backend", d.PID, d.BackendStart)
			a.Reason = fmt.Sprintf("its blocker must be left alone (a session the runbook says not to touch, or an anti-wraparound autovacuum): cancel the waiting %s so the %d sessions behind it proceed, then reschedule the change after that work ends, with lock_timeout set",
				ddlLabel(d), d.QueuedBehind)
			actions = append([]Action{a}, actions...)
		} else {
			a.Action = ActionLeave
			a.Reason = fmt.Sprintf("the %s waits for %s on %s and %d sessions queue behind it: clear its blocker instead; cancelling it drains the queue but fails the change (the runbook touches the migration last)",
				ddlLabel(d), d.Mode, d.Relation, d.QueuedBehind)
			leave = append(leave, a)
		}
	}
	return append(actions, leave...), protected
}

// AntiWraparound reports an autovacuum run to prevent transaction ID wraparound,
// which PostgreSQL never cancels for a lock waiter.
func AntiWraparound(query string) bool {
	return strings.Contains(query, "(to prevent wraparound)")
}

// ddlLabel names what the DDL record holds: a schema change, an online
// (CONCURRENTLY) one, or maintenance.
func ddlLabel(d *DDL) string {
	switch d.Class {
	case DDLOnline:
		return "online DDL"
	case DDLMaintenance:
		return "maintenance (" + firstWords(d.Query, 1) + ")"
	}
	return "DDL"
}

// rootEvidence is what the recording shows of a root blocker.
func rootEvidence(r RootBlocker) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seen blocking from %s to %s", r.FirstSeen.Format("15:04:05.000"), r.LastSeen.Format("15:04:05.000"))
	if r.State != "" {
		fmt.Fprintf(&b, ", state %q", r.State)
	}
	if r.XactStart != nil {
		fmt.Fprintf(&b, ", transaction %.1f s old when first seen", r.TransactionAge)
	}
	if len(r.Locks) > 0 {
		b.WriteString(", holding " + describeLocks(r.Locks))
	}
	return b.String()
}

// signalSQL is the statement that signals one backend, and no other that
// reuses its pid.
func signalSQL(fn string, pid int32, start time.Time) string {
	return fmt.Sprintf("SELECT %s(pid) FROM pg_stat_activity WHERE pid = %d AND backend_start = '%s';",
		fn, pid, start.UTC().Format("2006-01-02 15:04:05.999999+00"))
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// advisoryOnly reports whether every lock a root blocker holds against
// its waiters is an advisory lock.
func advisoryOnly(ls []HeldLock) bool {
	for _, l := range ls {
		if !strings.HasPrefix(l.Target, "advisory lock") {
			return false
		}
	}
	return len(ls) > 0
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
