// Package replay shows a recorded moment the way the on-call runbook's own
// psql queries would have shown it live: the Step 0 activity snapshot, the
// Step 1 waiting-vs-granted locks, the AccessExclusive focus, the blocking
// graph and the Step 4 verification counts, with the same columns, in the
// same order, as psql aligned tables.
//
// Each view evaluates its runbook query over one full sample of the
// recording, with now() the sample's time and current_database() the
// database the recorder was connected to. The recorder's own session is
// left out; the live query would also list the psql session running it.
package replay

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture/recording"
)

// The views, in the runbook's order.
const (
	ViewActivity        = "activity"
	ViewLocks           = "locks"
	ViewAccessExclusive = "access-exclusive"
	ViewBlocking        = "blocking"
	ViewVerify          = "verify"
	ViewPrepared        = "prepared"
)

// View is one of the runbook's queries.
type View struct {
	Name  string
	Title string
	// SQL is the runbook's query, verbatim.
	SQL string
	// Eval evaluates the query over a frame; a view may print several
	// results, as a psql -c with several statements does.
	Eval func(f *analyze.Frame) []Table
}

// Views are the runbook's queries, in its order.
var Views = []View{
	{ViewActivity, "Step 0: capture the lock/wait state", SQLActivity, activity},
	{ViewLocks, "Step 1: waiting vs granted locks with relation names", SQLLocks, locks},
	{ViewAccessExclusive, "Step 1: AccessExclusive lock holders and waiters", SQLAccessExclusive, accessExclusive},
	{ViewBlocking, "Step 1: blocking graph, who is waiting on whom", SQLBlocking, blocking},
	{ViewVerify, "Step 4: verify recovery", SQLVerifyWaiters + "\n" + SQLVerifyAccessExclusive + "\n" + SQLVerifyModules, verify},
	{ViewPrepared, "Step 1: prepared transactions (pid 0 in pg_blocking_pids: no backend to cancel)", SQLPrepared, prepared},
}

// LookupView finds a view by name.
func LookupView(name string) (View, bool) {
	for _, v := range Views {
		if v.Name == name {
			return v, true
		}
	}
	return View{}, false
}

// ViewNames lists the views' names.
func ViewNames() []string {
	var names []string
	for _, v := range Views {
		names = append(names, v.Name)
	}
	return names
}

// Render prints the named views (all when names is empty) of a frame.
func Render(w io.Writer, f *analyze.Frame, names []string) error {
	for _, v := range Views {
		if len(names) > 0 && !slices.Contains(names, v.Name) {
			continue
		}
		if _, err := fmt.Fprintf(w, "-- %s (%s)\n", v.Title, v.Name); err != nil {
			return err
		}
		for _, t := range v.Eval(f) {
			if err := t.WritePsql(w); err != nil {
				return err
			}
		}
		if v.Name == ViewVerify && !f.ModulesPolled {
			if _, err := io.WriteString(w, "-- ir_module_module: not in this database (no Odoo modules to check)\n\n"); err != nil {
				return err
			}
		}
	}
	return nil
}

// psqlTime formats a timestamptz as psql shows it in UTC.
func psqlTime(t time.Time) string {
	s := t.UTC().Format("2006-01-02 15:04:05.999999")
	return s + "+00"
}

// interval formats now() - then as PostgreSQL's interval output does:
// [-][N day[s] ]HH:MM:SS[.ffffff].
func interval(now time.Time, thenUS int64) *string {
	if thenUS == 0 {
		return nil
	}
	d := now.UnixMicro() - thenUS
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	days := d / (86400 * 1e6)
	d -= days * 86400 * 1e6
	h, m, s, us := d/3600e6, d/60e6%60, d/1e6%60, d%1e6
	out := sign
	switch {
	case days == 1:
		out += "1 day "
	case days > 1:
		out += fmt.Sprintf("%d days ", days)
	}
	out += fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	if us != 0 {
		out += strings.TrimRight(fmt.Sprintf(".%06d", us), "0")
	}
	return &out
}

// left is SQL's left(s, n): the first n characters.
func left(s string, n int) *string {
	if s == "" {
		return nil
	}
	i := 0
	for j := range s {
		if i == n {
			s = s[:j]
			break
		}
		i++
	}
	return &s
}

func itoa[T ~int32 | ~int64 | ~int](v T) *string { return str(strconv.FormatInt(int64(v), 10)) }

func boolText(b bool) *string {
	if b {
		return str("t")
	}
	return str("f")
}

// inDB is the runbook's "datname = current_database()".
func inDB(f *analyze.Frame, a *recording.Activity) bool { return a.DatName == f.Database }

// byPID indexes the frame's activity rows.
func byPID(f *analyze.Frame) map[int32]*recording.Activity {
	m := make(map[int32]*recording.Activity, len(f.Activity))
	for i := range f.Activity {
		m[f.Activity[i].PID] = &f.Activity[i]
	}
	return m
}

// relation is coalesce(c.relname::text, l.relation::text).
func relation(f *analyze.Frame, l *recording.Lock) *string {
	if l.Relation == 0 {
		return nil
	}
	if n, ok := f.Relations[l.Relation]; ok {
		return str(n)
	}
	return itoa(l.Relation)
}

// ascNullsLast orders microsecond timestamps ascending with 0 (NULL) last,
// as ORDER BY x ASC does; descNullsFirst is ORDER BY x DESC on an age,
// i.e. the timestamp ascending with NULL first.
func ascNullsLast(a, b int64) int {
	switch {
	case a == b:
		return 0
	case a == 0:
		return 1
	case b == 0:
		return -1
	}
	return cmp.Compare(a, b)
}

func ageDescNullsFirst(a, b int64) int {
	switch {
	case a == b:
		return 0
	case a == 0:
		return -1
	case b == 0:
		return 1
	}
	return cmp.Compare(a, b) // older start: larger age: first
}

func activity(f *analyze.Frame) []Table {
	now := Table{Columns: []string{"captured_at"}}
	now.add(str(psqlTime(f.TS)))
	t := Table{Columns: []string{"pid", "usename", "application_name", "state", "wait_event_type", "wait_event", "runtime", "query"},
		Right: []bool{true, false, false, false, false, false, false, false}}
	var rows []*recording.Activity
	for i := range f.Activity {
		if inDB(f, &f.Activity[i]) {
			rows = append(rows, &f.Activity[i])
		}
	}
	slices.SortStableFunc(rows, func(a, b *recording.Activity) int {
		return cmp.Or(ascNullsLast(a.QueryStart, b.QueryStart), cmp.Compare(a.PID, b.PID))
	})
	for _, a := range rows {
		t.add(itoa(a.PID), nullIfEmpty(a.UseName), str(a.ApplicationName), nullIfEmpty(a.State), nullIfEmpty(a.WaitEventType),
			nullIfEmpty(a.WaitEvent), interval(f.TS, a.QueryStart), left(a.Query, 220))
	}
	return []Table{now, t}
}

type lockRow struct {
	l *recording.Lock
	a *recording.Activity
}

// lockRows is pg_locks joined to pg_stat_activity on pid, in the current
// database, ordered by granted, then age descending.
func lockRows(f *analyze.Frame, keep func(*recording.Lock) bool) []lockRow {
	acts := byPID(f)
	var rows []lockRow
	for i := range f.Locks {
		l := &f.Locks[i]
		a, ok := acts[l.PID]
		if !ok || !inDB(f, a) || !keep(l) {
			continue
		}
		rows = append(rows, lockRow{l, a})
	}
	slices.SortStableFunc(rows, func(x, y lockRow) int {
		return cmp.Or(cmp.Compare(boolN(x.l.Granted), boolN(y.l.Granted)), ageDescNullsFirst(x.a.QueryStart, y.a.QueryStart), cmp.Compare(x.a.PID, y.a.PID))
	})
	return rows
}

func boolN(b bool) int {
	if b {
		return 1
	}
	return 0
}

func locks(f *analyze.Frame) []Table {
	t := Table{Columns: []string{"pid", "usename", "application_name", "mode", "granted", "relation", "query_age", "query"},
		Right: []bool{true, false, false, false, false, false, false, false}}
	for _, r := range lockRows(f, func(*recording.Lock) bool { return true }) {
		t.add(itoa(r.a.PID), nullIfEmpty(r.a.UseName), str(r.a.ApplicationName), str(r.l.Mode), boolText(r.l.Granted),
			relation(f, r.l), interval(f.TS, r.a.QueryStart), left(r.a.Query, 200))
	}
	return []Table{t}
}

func accessExclusive(f *analyze.Frame) []Table {
	t := Table{Columns: []string{"pid", "application_name", "granted", "age", "relation", "query"},
		Right: []bool{true, false, false, false, false, false}}
	for _, r := range lockRows(f, func(l *recording.Lock) bool { return l.Mode == "AccessExclusiveLock" }) {
		t.add(itoa(r.a.PID), str(r.a.ApplicationName), boolText(r.l.Granted), interval(f.TS, r.a.QueryStart),
			relation(f, r.l), left(r.a.Query, 220))
	}
	return []Table{t}
}

func blocking(f *analyze.Frame) []Table {
	t := Table{Columns: []string{"waiting_pid", "waiting_app", "waiting_for", "blocking_pid", "blocking_app", "blocking_for", "waiting_query", "blocking_query"},
		Right: []bool{true, false, false, true, false, false, false, false}}
	acts := byPID(f)
	type edge struct{ w, b *recording.Activity }
	var rows []edge
	for _, e := range f.Edges {
		w, ok1 := acts[e.PID]
		b, ok2 := acts[e.BlockingPID]
		if !ok1 || !ok2 || !inDB(f, w) {
			continue
		}
		rows = append(rows, edge{w, b})
	}
	slices.SortStableFunc(rows, func(x, y edge) int {
		return cmp.Or(ageDescNullsFirst(x.w.QueryStart, y.w.QueryStart), cmp.Compare(x.w.PID, y.w.PID), cmp.Compare(x.b.PID, y.b.PID))
	})
	for _, r := range rows {
		t.add(itoa(r.w.PID), str(r.w.ApplicationName), interval(f.TS, r.w.QueryStart), itoa(r.b.PID), str(r.b.ApplicationName),
			interval(f.TS, r.b.QueryStart), left(r.w.Query, 120), left(r.b.Query, 120))
	}
	return []Table{t}
}

func verify(f *analyze.Frame) []Table {
	var waiters, ae int
	for i := range f.Activity {
		if a := &f.Activity[i]; inDB(f, a) && a.WaitEventType == "Lock" {
			waiters++
		}
	}
	ae = len(lockRows(f, func(l *recording.Lock) bool { return l.Mode == "AccessExclusiveLock" && !l.Granted }))
	t1 := Table{Columns: []string{"lock_waiters"}, Right: []bool{true}}
	t1.add(itoa(waiters))
	t2 := Table{Columns: []string{"access_exclusive_waiters"}, Right: []bool{true}}
	t2.add(itoa(ae))
	out := []Table{t1, t2}
	if f.ModulesPolled {
		t3 := Table{Columns: []string{"name", "state"}}
		mods := slices.Clone(f.Modules)
		slices.SortFunc(mods, func(a, b recording.OdooModule) int { return cmp.Compare(a.Name, b.Name) })
		for _, m := range mods {
			t3.add(str(m.Name), str(m.State))
		}
		out = append(out, t3)
	}
	return out
}

func prepared(f *analyze.Frame) []Table {
	t := Table{Columns: []string{"gid", "database", "owner", "prepared", "age"}}
	ps := slices.Clone(f.Prepared)
	slices.SortStableFunc(ps, func(a, b recording.PreparedXact) int { return cmp.Compare(a.Prepared, b.Prepared) })
	for _, p := range ps {
		t.add(str(p.GID), str(p.Database), str(p.Owner), str(psqlTime(time.UnixMicro(p.Prepared))), interval(f.TS, p.Prepared))
	}
	return []Table{t}
}
