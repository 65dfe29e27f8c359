package analyze

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// How incidents end: what the recording can tell about the root blocker's
// end, the DDL's outcome, and the operator's statements — and where it
// cannot tell, saying so instead of guessing.

// ApplicationGroup is the application a session counts under in charts and
// roll-ups: its application_name with a trailing number replaced by "*"
// (Odoo names its sessions odoo-<pid>), "(none)" when empty.
func ApplicationGroup(app string) string {
	if app == "" {
		return "(none)"
	}
	i := len(app)
	for i > 0 && app[i-1] >= '0' && app[i-1] <= '9' {
		i--
	}
	if i == len(app) || i == 0 {
		return app
	}
	return app[:i] + "*"
}

func appGroupOf(g *graph, b Backend) string {
	if b.PID == 0 {
		return "(prepared transaction)"
	}
	if a := g.backends[b]; a != nil {
		return SessionApplication(Session{PID: b.PID, ApplicationName: a.ApplicationName, BackendType: a.BackendType})
	}
	return "(none)"
}

var (
	operatorCall = regexp.MustCompile(`(?i)\bpg_(cancel|terminate)_backend\s*\(\s*(\d+)?`)
	wherePID     = regexp.MustCompile(`(?i)\bwhere\s+(?:\w+\.)?pid\s*=\s*(\d+)\b`)
	preparedCall = regexp.MustCompile(`(?i)\b(commit|rollback)\s+prepared\s+'((?:[^']|'')*)'`)
)

// noticeOperators records statements that act on other sessions, once
// per run (backend and query_start).
func (t *tracker) noticeOperators(g *graph) {
	for b, a := range g.backends {
		q := a.Query
		if a.QueryStart == 0 || !(strings.Contains(q, "_backend") || strings.Contains(q, "repared") || strings.Contains(q, "REPARED")) {
			continue
		}
		key := opKey{b, a.QueryStart}
		if t.opSeen[key] {
			continue
		}
		var found []OperatorAction
		base := OperatorAction{At: time.UnixMicro(a.QueryStart).UTC(), SeenAt: time.UnixMicro(g.ts).UTC(), PID: b.PID,
			BackendStart: time.UnixMicro(b.Start).UTC(), ApplicationName: a.ApplicationName, User: a.UseName, Query: q}
		for _, m := range operatorCall.FindAllStringSubmatch(q, -1) {
			op := base
			op.Action = strings.ToLower(m[1])
			if n, err := strconv.ParseInt(m[2], 10, 32); err == nil {
				op.Target = int32(n)
			} else if w := wherePID.FindStringSubmatch(q); w != nil {
				// pg_terminate_backend(pid) FROM pg_stat_activity WHERE
				// pid = N …, as the runbook's actions are written.
				if n, err := strconv.ParseInt(w[1], 10, 32); err == nil {
					op.Target = int32(n)
				}
			}
			found = append(found, op)
		}
		for _, m := range preparedCall.FindAllStringSubmatch(q, -1) {
			op := base
			op.Action = strings.ToLower(m[1]) + "_prepared"
			op.GID = strings.ReplaceAll(m[2], "''", "'")
			found = append(found, op)
		}
		if len(found) == 0 {
			continue
		}
		if t.opSeen == nil {
			t.opSeen = map[opKey]bool{}
		}
		t.opSeen[key] = true
		t.ops = append(t.ops, found...)
	}
	slices.SortStableFunc(t.ops, func(a, b OperatorAction) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return int(a.PID - b.PID)
	})
}

type opKey struct {
	b          Backend
	queryStart int64
}

// opOn finds a statement seen acting on pid with the given action whose
// query_start lies in [from, to] (µs).
func (t *tracker) opOn(pid int32, action string, from, to int64) *OperatorAction {
	for i := len(t.ops) - 1; i >= 0; i-- {
		op := &t.ops[i]
		at := op.At.UnixMicro()
		if op.Target == pid && op.Action == action && at >= from && at <= to {
			return op
		}
	}
	return nil
}

// preparedOp finds a COMMIT or ROLLBACK PREPARED naming gid (any gid
// when gid is "") whose query_start lies in [from, to].
func (t *tracker) preparedOp(gid string, from, to int64) *OperatorAction {
	for i := len(t.ops) - 1; i >= 0; i-- {
		op := &t.ops[i]
		at := op.At.UnixMicro()
		if op.GID != "" && (gid == "" || op.GID == gid) && at >= from && at <= to {
			return op
		}
	}
	return nil
}

// opsFor returns the operator statements of an incident: run between the
// sample before it formed and the sample that saw it drained, naming one
// of its sessions (or not showing whom they named).
func (t *tracker) opsFor(inc *incState) []OperatorAction {
	end := inc.lastSeen
	if inc.end != 0 {
		end = inc.end
	}
	from := inc.start - 2e6
	out := []OperatorAction{}
	for _, op := range t.ops {
		at := op.At.UnixMicro()
		if at < from || at > end {
			continue
		}
		in := op.Target == 0 && op.GID == ""
		for b := range inc.roots {
			in = in || (op.Target == b.PID && op.Target != 0) || (b.PID == 0 && op.GID != "")
		}
		for b := range inc.waiters {
			in = in || op.Target == b.PID
		}
		if in {
			out = append(out, op)
		}
	}
	return out
}

// describeOp is an operator statement as a sentence fragment.
func describeOp(op *OperatorAction) string {
	return fmt.Sprintf("pid %d (%s) ran %q at %s", op.PID, cmpOr(op.ApplicationName, op.User, "no application name"), oneLine(op.Query, 100), clock(op.At.UnixMicro()))
}

func cmpOr(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// lockTaking matches statements that take a strong lock on a relation.
var lockTaking = regexp.MustCompile(`(?is)^\s*(?:/\*.*?\*/\s*)*(alter\s+(table|index|materialized\s+view)|drop\s|truncate|lock\s|reindex|cluster|vacuum|refresh\s+materialized|create\s+(unique\s+)?index|create\s+trigger|comment\s+on)`)

// takesLock says whether a statement is one that takes a relation lock
// strong enough to make it the DDL.
func takesLock(q string) bool { return lockTaking.MatchString(q) }

// seenStmt is a lock-taking statement seen running in a backend.
type seenStmt struct {
	query      string
	queryStart int64
	xactStart  int64
}

// noticeStatements remembers, per backend, the last lock-taking statement
// seen in a sample (quiet ones too: the DDL that later blocks everyone
// usually ran before anyone waited).
func (t *tracker) noticeStatements(acts []recording.Activity) {
	for i := range acts {
		a := &acts[i]
		if a.State == "idle" || a.State == "" {
			continue
		}
		q := strings.TrimLeft(a.Query, " \t\r\n")
		if q == "" || !strings.ContainsRune("acdlrtvACDLRTV/", rune(q[0])) {
			continue
		}
		if !takesLock(a.Query) {
			continue
		}
		b := Backend{a.PID, a.BackendStart}
		if s, ok := t.stmts[b]; ok && s.queryStart == a.QueryStart {
			continue
		}
		if t.stmts == nil {
			t.stmts = map[Backend]seenStmt{}
		}
		t.stmts[b] = seenStmt{query: a.Query, queryStart: a.QueryStart, xactStart: a.XactStart}
	}
}

// holdsAny reports a lock b holds in g matching one of locks (target and
// mode), as a sentence fragment.
func (t *tracker) holdsAny(g *graph, b Backend, locks []HeldLock) (string, bool) {
	for _, l := range g.held[b] {
		hl := HeldLock{Target: tagOf(l).describe(t.rels), Mode: l.Mode}
		if slices.Contains(locks, hl) {
			return hl.Mode + " on " + hl.Target, true
		}
	}
	return "", false
}

// rootGone settles how a root blocker stopped blocking, from the sample g
// that no longer shows it as a root.
func (t *tracker) rootGone(rs *rootState, b Backend, g *graph) {
	rs.gone = g.ts
	a := g.backends[b]
	seen, now := clock(rs.last), clock(g.ts)
	if b.PID == 0 {
		if held, ok := t.holdsAny(g, b, rs.locks); ok {
			rs.ending = EndingKeptLocks
			rs.evidence = fmt.Sprintf("at %s the prepared transaction still held %s, but no one waited for it any more", now, held)
			return
		}
		rs.ending = EndingPreparedResolved
		rs.evidence = fmt.Sprintf("its locks were gone at %s: COMMIT PREPARED or ROLLBACK PREPARED", now)
		if op := t.preparedOp(rs.info.GID, rs.first-60e6, g.ts); op != nil {
			rs.ending = EndingPreparedRolledBack
			if op.Action == "commit_prepared" {
				rs.ending = EndingPreparedCommitted
			}
			rs.evidence = fmt.Sprintf("%s; its locks were gone at %s", describeOp(op), now)
			return
		}
		rs.evidence += " — the recording shows neither statement, so it cannot tell which"
		return
	}
	if a == nil {
		rs.ended = true
		if op := t.opOn(b.PID, "terminate", rs.first-2e6, g.ts); op != nil {
			rs.ending = EndingTerminated
			rs.evidence = fmt.Sprintf("%s; the backend was gone at %s", describeOp(op), now)
			return
		}
		rs.ending = EndingLeft
		rs.evidence = fmt.Sprintf("the backend was seen at %s and gone at %s, and no statement terminating it was seen: it was terminated, or its client ended its transaction and disconnected — the recording cannot tell which", seen, now)
		return
	}
	if held, ok := t.holdsAny(g, b, rs.locks); ok {
		rs.ending = EndingKeptLocks
		rs.evidence = fmt.Sprintf("at %s it still held %s (state %q), but no one waited for it any more: the queue ended from the waiting side", now, held, a.State)
		return
	}
	// A terminated backend gives up its locks as it exits, and may still
	// be listed, with its last state, in the sample after.
	if op := t.opOn(b.PID, "terminate", rs.first-2e6, g.ts); op != nil {
		rs.ended = true
		rs.ending = EndingTerminated
		rs.evidence = fmt.Sprintf("%s; by %s its locks were gone and the backend was exiting (still listed, state %q)", describeOp(op), now, a.State)
		return
	}
	prev := rs.lastAct
	cancel := t.opOn(b.PID, "cancel", rs.first-2e6, g.ts)
	lastEnding, lastEvidence := lastStatementEnds(prev.State, rs.last, a)
	switch {
	case cancel != nil:
		rs.ending = EndingCancelled
		rs.evidence = fmt.Sprintf("%s; by %s its locks were gone and it stayed connected (state %q)", describeOp(cancel), now, a.State)
	case prev.XactStart != 0 && a.XactStart == prev.XactStart:
		rs.ending = EndingReleased
		rs.evidence = fmt.Sprintf("by %s its locks were gone while pg_stat_activity still showed the same transaction (begun at %s; state %q): a rollback to a savepoint, a statement's own lock, or a backend being terminated (still listed while it exits) — the recording cannot tell which", now, clock(prev.XactStart), a.State)
	case strings.Contains(a.State, "aborted"):
		// An error or a cancel inside a transaction block aborts the
		// transaction at once, releasing its locks; the session waits
		// for its client's ROLLBACK.
		rs.ending = EndingRolledBack
		rs.evidence = fmt.Sprintf("it was %q at %s; by %s its statement had failed and its transaction was aborted (state %q), which releases its locks and undoes its work: a cancel, a statement_timeout or an error — no cancel naming it was seen, and the recording cannot tell which", prev.State, seen, now, a.State)
	case lastEnding != "":
		rs.ending, rs.evidence = lastEnding, lastEvidence
	case strings.Contains(prev.State, "aborted"):
		rs.ending = EndingRolledBack
		rs.evidence = fmt.Sprintf("its transaction was seen aborted at %s; by %s it had ended and the session stayed connected (state %q): a rollback", seen, now, a.State)
	case prev.State == "active":
		rs.ending = EndingTransactionEnded
		rs.evidence = fmt.Sprintf("it was running a statement (since %s) at %s; by %s the statement and its transaction had ended and the session stayed connected (state %q): the statement finished, failed or was cancelled — no cancel naming it was seen, and the recording cannot tell which", clock(prev.QueryStart), seen, now, a.State)
	default:
		rs.ending = EndingTransactionEnded
		rs.evidence = fmt.Sprintf("it was %q at %s; by %s its transaction had ended and the session stayed connected (state %q): committed or rolled back — the recording cannot tell which", prev.State, seen, now, a.State)
	}
}

// rootOutcome is the coarse Outcome for an ending.
func rootOutcome(ending string) string {
	switch ending {
	case EndingStillBlocking:
		return "still blocking"
	case EndingTerminated:
		return "terminated"
	case EndingLeft:
		return "gone"
	case EndingKeptLocks:
		return "kept locks"
	case EndingPreparedResolved, EndingPreparedRolledBack, EndingPreparedCommitted:
		return "finished" // COMMIT or ROLLBACK PREPARED: a prepared transaction has no backend to release
	}
	return "released"
}

// settleWait decides how a DDL's wait ended, from the first sample g that
// no longer shows it waiting.
func (t *tracker) settleWait(inc *incState, d *ddlState, g *graph) (outcome, evidence string) {
	b := d.backend
	a := g.backends[b]
	last, now := clock(d.lastWait), clock(g.ts)
	h, hmode, blocked := stillHolds(g, d)
	switch {
	case a == nil:
		if op := t.opOn(b.PID, "terminate", d.firstWait-2e6, g.ts); op != nil {
			return OutcomeTerminated, fmt.Sprintf("%s; the backend was gone at %s while its %s request waited", describeOp(op), now, d.mode)
		}
		if blocked {
			return OutcomeLeftWaiting, fmt.Sprintf("the backend was seen waiting at %s and gone at %s while pid %d still held %s on %s: it never got its lock (terminated, or its client gave up and disconnected — the recording cannot tell which)",
				last, now, h.PID, hmode, d.relation)
		}
		return OutcomeCompletedOrTerminated, fmt.Sprintf("the backend was seen waiting at %s and gone at %s, in the same interval as its blockers released their locks; its %s was never seen granted: it got its lock, completed and disconnected, or it was terminated — the recording cannot tell which",
			last, now, d.mode)
	case holdsStrong(g, b, d.mode):
		return OutcomeGranted, fmt.Sprintf("%s granted by %s (seen held in pg_locks)", d.mode, now)
	case blocked:
		if op := t.opOn(b.PID, "cancel", d.firstWait-2e6, g.ts); op != nil {
			return OutcomeCancelled, fmt.Sprintf("%s; by %s the wait had ended while pid %d still held %s on %s, and the session stayed connected (state %q)", describeOp(op), now, h.PID, hmode, d.relation, a.State)
		}
		return OutcomeGaveUp, fmt.Sprintf("the wait ended by %s while pid %d still held %s on %s, and the session stayed connected (state %q): a lock_timeout, a statement_timeout or a cancel gave up — no cancel naming it was seen, and the recording cannot tell which",
			now, h.PID, hmode, d.relation, a.State)
	case strings.Contains(a.State, "aborted"):
		return OutcomeGaveUp, fmt.Sprintf("its blockers had released by %s, but its transaction was aborted (state %q): the statement failed", now, a.State)
	case a.State == "active" && a.QueryStart == d.queryStart:
		return OutcomeGranted, fmt.Sprintf("by %s its blockers had released and its statement ran on without waiting: it got its lock", now)
	}
	// The blockers released in the same interval as the wait ended: the
	// order of the two, from the server's own timestamps, tells a grant
	// from a give-up where it can.
	td := a.StateChange
	late, early, why := t.releaseTime(inc, d, g)
	// A lock_timeout fires a fixed time after the wait began: an attempt
	// as long as one that gave up before may have timed out just as its
	// blocker released, its error reported a moment later.
	timedOut := false
	if td != 0 {
		for _, dur := range d.gaveUpAfter {
			if diff := td - d.curStartTS - dur; diff > -100e3 && diff < 100e3 {
				timedOut = true
			}
		}
	}
	switch {
	case td != 0 && late != 0 && td >= late && !timedOut:
		return OutcomeGranted, fmt.Sprintf("its statement ended at %s (state %q), after its blockers had released (%s): it got its lock", clock(td), a.State, why)
	case td != 0 && early != 0 && td < early:
		return OutcomeGaveUp, fmt.Sprintf("its statement ended at %s (state %q), before its blockers released (%s): it gave up — a lock_timeout, a statement_timeout or a cancel; the recording cannot tell which", clock(td), a.State, why)
	}
	if timedOut {
		return OutcomeUnknown, fmt.Sprintf("its wait ended between the samples at %s and %s, as its blockers released, after as long as an earlier attempt that gave up (a lock_timeout), and the session stayed (state %q): it got its lock, or it timed out just before — the recording cannot tell which", last, now, a.State)
	}
	return OutcomeUnknown, fmt.Sprintf("its wait ended between the samples at %s and %s, in the same interval as its blockers released, and the session stayed (state %q): it got its lock, or it gave up just before — the recording cannot tell which", last, now, a.State)
}

// releaseTime bounds when the DDL's blockers (of its last waiting
// sample) released: late is a moment by which all had, early one before
// which none had (0: unknown), with what shows it.
func (t *tracker) releaseTime(inc *incState, d *ddlState, g *graph) (late, early int64, why string) {
	var whys []string
	for _, h := range d.blockers {
		ha := g.backends[h]
		if h.PID == 0 {
			// A prepared transaction's locks go during the COMMIT or
			// ROLLBACK PREPARED that names it: after its query_start,
			// by the end of that statement (its session's state_change).
			gid := ""
			if rs, ok := inc.roots[h]; ok {
				gid = rs.info.GID
			}
			op := t.preparedOp(gid, d.firstWait-2e6, g.ts)
			if op == nil {
				return 0, 0, ""
			}
			at := op.At.UnixMicro()
			early = max(early, at)
			oa := g.backends[Backend{op.PID, op.BackendStart.UnixMicro()}]
			if oa == nil || oa.QueryStart != at || oa.State != "idle" {
				return 0, early, fmt.Sprintf("the prepared transaction's %s began at %s", strings.ToUpper(strings.ReplaceAll(op.Action, "_", " ")), clock(at))
			}
			late = max(late, oa.StateChange)
			whys = append(whys, fmt.Sprintf("the prepared transaction's %s ran from %s to %s", strings.ToUpper(strings.ReplaceAll(op.Action, "_", " ")), clock(at), clock(oa.StateChange)))
			continue
		}
		if ha == nil {
			op := t.opOn(h.PID, "terminate", d.firstWait-2e6, g.ts)
			if op == nil {
				return 0, 0, ""
			}
			// Terminated: its locks went at exit, just after the call.
			at := op.At.UnixMicro()
			late, early = max(late, at), max(early, at)
			whys = append(whys, fmt.Sprintf("pid %d terminated by a call at %s", h.PID, clock(at)))
			continue
		}
		if ha.State != "idle" || ha.StateChange == 0 {
			return 0, 0, ""
		}
		// Idle outside a transaction: its last statement ended its
		// transaction when that statement is the one it ran when last
		// seen blocking, or a COMMIT/ROLLBACK. Its locks went during
		// that statement's end, before it reported idle: after the
		// statement began and after the last sample that saw them held,
		// by state_change — never exactly at state_change.
		late = max(late, ha.StateChange)
		if ha.QueryStart <= d.lastWait || endsXact.MatchString(ha.Query) {
			early = max(early, ha.QueryStart, d.lastWait)
			whys = append(whys, fmt.Sprintf("pid %d's transaction ended, releasing its locks, between %s and %s", h.PID, clock(max(ha.QueryStart, d.lastWait)), clock(ha.StateChange)))
		} else {
			whys = append(whys, fmt.Sprintf("pid %d's transaction had ended by %s", h.PID, clock(ha.StateChange)))
		}
	}
	if len(whys) != len(d.blockers) || len(whys) == 0 {
		return 0, 0, ""
	}
	if len(whys) != countExact(whys) {
		early = 0
	}
	return late, early, strings.Join(whys, "; ")
}

func countExact(whys []string) int {
	n := 0
	for _, w := range whys {
		if !strings.Contains(w, "had ended by") {
			n++
		}
	}
	return n
}

var endsXact = regexp.MustCompile(`(?i)^\s*(commit|end|rollback|abort)\b`)

// followDDL watches a DDL session after a wait it gave up: a retry that
// runs without being seen waiting (its blocker gone meanwhile) is the
// attempt that succeeded, and would otherwise go unmentioned.
func (t *tracker) followDDL(d *ddlState, g *graph) {
	if d.waiting || g.ts > d.followUntil {
		d.follow = false
		return
	}
	a := g.backends[d.backend]
	if a == nil {
		d.follow = false
		return
	}
	if a.QueryStart == 0 || a.QueryStart <= d.queryStart || !sameStatement(a.Query, d.lastQuery) {
		return
	}
	var outcome, evidence string
	switch {
	case holdsStrong(g, d.backend, d.mode):
		outcome, evidence = OutcomeGranted, fmt.Sprintf("a new run of the statement began at %s and held %s by %s (seen in pg_locks) without being seen waiting", clock(a.QueryStart), d.mode, clock(g.ts))
	case a.State == "active":
		return // running: the next sample tells
	case strings.Contains(a.State, "aborted"):
		outcome, evidence = OutcomeGaveUp, fmt.Sprintf("a new run of the statement began at %s and had failed by %s (state %q) without being seen waiting", clock(a.QueryStart), clock(g.ts), a.State)
	default:
		outcome, evidence = OutcomeGranted, fmt.Sprintf("a new run of the statement began at %s, after its blocker had released, and had finished by %s (state %q) without being seen waiting: it got its lock", clock(a.QueryStart), clock(g.ts), a.State)
	}
	d.follow = false
	if n := len(d.log); n > 0 && d.log[n-1].Outcome == OutcomeUnknown {
		// The statement ran again: the attempt before did not get it.
		d.log[n-1].Outcome = OutcomeGaveUp
		d.log[n-1].Evidence += "; the statement ran again at " + clock(a.QueryStart) + ", so this attempt had given up"
	}
	d.attempts++
	d.queryStart = a.QueryStart
	d.settled = g.ts
	d.outcome, d.evidence = outcome, evidence
	end := time.UnixMicro(g.ts).UTC()
	d.log = append(d.log, Attempt{Start: time.UnixMicro(a.QueryStart).UTC(), End: &end, Outcome: outcome, Evidence: evidence})
}

// sameStatement: a retry runs the same text (whitespace aside).
func sameStatement(a, b string) bool {
	return a != "" && strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
}

// following reports whether a DDL session is being watched after a wait:
// the samples then need their activity even when no one waits.
func (t *tracker) following() bool {
	for _, list := range [][]*incState{t.open, t.done} {
		for _, inc := range list {
			for _, d := range inc.ddls {
				if d.follow || d.cw.on {
					return true
				}
			}
		}
	}
	return false
}

// followAll advances every followed DDL, and every DDL transaction
// watched for its commit, by one sample.
func (t *tracker) followAll(g *graph) {
	if g.backends == nil {
		return
	}
	for _, list := range [][]*incState{t.open, t.done} {
		for _, inc := range list {
			for _, d := range inc.ddls {
				if d.follow {
					t.followDDL(d, g)
				}
				if d.cw.on && !d.waiting && g.ts > d.cw.lastOpen {
					t.stepCommit(d, g)
				}
			}
		}
	}
}

// endedBy says which side ended a drained queue, in a word and a sentence.
func endedBy(x *Incident) (string, string) {
	if x.End == nil {
		return "", "the queue had not drained when the recording ends"
	}
	if dl := x.Deadlock; dl != nil && len(x.RootBlockers) == 0 {
		if dl.Victim != 0 {
			return EndedByDeadlockDetector, fmt.Sprintf("PostgreSQL's deadlock detector aborted pid %d, a member of the cycle", dl.Victim)
		}
		return EndedByDeadlockDetector, "PostgreSQL's deadlock detector aborted a member of the cycle (the recording cannot tell which)"
	}
	if c := x.Contention; c != nil && c.Churn && len(x.RootBlockers) == 0 {
		return EndedByUnknown, "no single session ended it: the holders changed from sample to sample, and the waits stopped when the contention did"
	}
	var kept, gone []RootBlocker
	for _, r := range x.RootBlockers {
		switch r.Ending {
		case EndingKeptLocks:
			kept = append(kept, r)
		case EndingStillBlocking:
		default:
			gone = append(gone, r)
		}
	}
	d := x.DDL
	gaveUpOutcomes := []string{OutcomeGaveUp, OutcomeCancelled, OutcomeLockTimeout, OutcomeTerminated, OutcomeLeftWaiting}
	gaveUp := d != nil && slices.Contains(gaveUpOutcomes, d.Outcome)
	how := ""
	if d != nil {
		how = outcomeWords(d.Outcome)
		// With retries, what ended the queue is the attempt that ended
		// as it drained, whatever a later attempt did.
		if i := slices.IndexFunc(d.AttemptLog, func(a Attempt) bool { return a.End != nil && a.End.Equal(*x.End) }); i >= 0 && len(d.AttemptLog) > 1 {
			a := d.AttemptLog[i]
			gaveUp = slices.Contains(gaveUpOutcomes, a.Outcome)
			how = fmt.Sprintf("%s at attempt %d of %d", outcomeWords(a.Outcome), i+1, len(d.AttemptLog))
		}
	}
	switch {
	case gaveUp && len(gone) == 0:
		s := fmt.Sprintf("the queue ended from the waiting side: the DDL (pid %d) %s", d.PID, how)
		if len(kept) > 0 {
			s += fmt.Sprintf(", while the root blocker %s kept its locks", rootName(kept[0]))
		}
		return EndedByWaiter, s
	case len(gone) > 0 && !gaveUp:
		r := gone[0]
		return EndedByBlocker, fmt.Sprintf("the queue ended from the blocking side: root blocker %s %s", rootName(r), endingWords(r.Ending))
	case len(gone) > 0 && gaveUp:
		return EndedByUnknown, fmt.Sprintf("both sides ended together: root blocker %s %s and the DDL (pid %d) %s", rootName(gone[0]), endingWords(gone[0].Ending), d.PID, how)
	}
	return EndedByUnknown, "the recording does not show which side ended the queue"
}

// outcomeWords says a DDL outcome in words.
func outcomeWords(o string) string {
	switch o {
	case OutcomeGranted:
		return "got its lock"
	case OutcomeCancelled:
		return "was cancelled"
	case OutcomeGaveUp:
		return "gave up (a lock_timeout, a statement_timeout or a cancel)"
	case OutcomeLockTimeout:
		return "gave up at every attempt (lock_timeout retries)"
	case OutcomeTerminated:
		return "was terminated"
	case OutcomeLeftWaiting:
		return "went away while still waiting"
	case OutcomeCompletedOrTerminated:
		return "completed or was terminated (the recording cannot tell which)"
	case OutcomeStillWaiting:
		return "was still waiting"
	case OutcomeUnknown:
		return "got its lock or gave up just before (the recording cannot tell which)"
	case OutcomeHeld:
		return "held the lock itself"
	}
	return o
}

// endingWords says a root blocker's ending in words.
func endingWords(e string) string {
	switch e {
	case EndingTransactionEnded:
		return "ended its transaction (committed or rolled back) and stayed connected"
	case EndingCommitted:
		return "committed its transaction and stayed connected"
	case EndingRolledBack:
		return "rolled back its transaction and stayed connected"
	case EndingCancelled:
		return "was cancelled and stayed connected"
	case EndingReleased:
		return "released its locks inside its transaction"
	case EndingKeptLocks:
		return "kept its locks (no one waited for it any more)"
	case EndingTerminated:
		return "was terminated"
	case EndingLeft:
		return "went away (terminated or disconnected: the recording cannot tell which)"
	case EndingPreparedResolved:
		return "was committed or rolled back (prepared transaction)"
	case EndingPreparedRolledBack:
		return "was rolled back (ROLLBACK PREPARED)"
	case EndingPreparedCommitted:
		return "was committed (COMMIT PREPARED)"
	case EndingStillBlocking:
		return "was still blocking"
	}
	return e
}

// EndingWords says a root blocker's ending in words, for reports.
func EndingWords(e string) string { return endingWords(e) }

// OutcomeWords says a DDL outcome in words, for reports.
func OutcomeWords(o string) string { return outcomeWords(o) }

// rootName names a root blocker in a sentence: "pid 4101", or the
// prepared transaction by its gid.
func rootName(r RootBlocker) string {
	if r.PID == 0 && r.GID != "" {
		return "prepared transaction " + quoteLiteral(r.GID)
	}
	return fmt.Sprintf("pid %d", r.PID)
}

// GuardApplication names the capture's guard as the author of the cancels
// it ran (OperatorAction.ApplicationName, with pid 0).
const GuardApplication = "lockscope guard"

// guardCancelled folds a cancel by the capture's guard, recorded as an
// event, into the incident's ending (after guardEnding has named the DDL
// cancelled): the attempt it cut short was cancelled, the cancel is an
// operator action, and the side that ended the queue, the path and what
// was done follow.
func guardCancelled(x *Incident, gc GuardCancel) {
	x.Operator = append(x.Operator, OperatorAction{At: gc.TS, SeenAt: gc.TS, ApplicationName: GuardApplication, Action: "cancel", Target: gc.PID,
		Query: fmt.Sprintf("SELECT pg_cancel_backend(%d)", gc.PID)})
	slices.SortStableFunc(x.Operator, func(a, b OperatorAction) int { return a.At.Compare(b.At) })
	d := x.DDL
	if d == nil || d.PID != gc.PID {
		return
	}
	why := fmt.Sprintf("the capture's guard cancelled it at %s after it waited %.1f s", clock(gc.TS.UnixMicro()), gc.Waited)
	for i := range d.AttemptLog {
		a := &d.AttemptLog[i]
		if a.End == nil || gc.TS.Before(a.Start) || gc.TS.After(a.End.Add(time.Second)) {
			continue
		}
		if a.Outcome == OutcomeGaveUp || a.Outcome == OutcomeUnknown {
			a.Outcome, a.Evidence = OutcomeCancelled, why+"; "+a.Evidence
			if i == len(d.AttemptLog)-1 && d.Outcome != OutcomeLockTimeout && d.Outcome != OutcomeCancelled {
				d.Outcome, d.Evidence = OutcomeCancelled, why+"; "+d.Evidence
			}
		}
		break
	}
	x.EndedBy, x.Ending = endedBy(x)
	x.Runbook.Path, x.Runbook.PathEvidence = changePath(x, "")
	x.Runbook.Done = done(x)
}
