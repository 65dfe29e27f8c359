package analyze

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/lockscope/lockscope/capture/recording"
)

// Whether the change a DDL made once it had its lock was committed
// (DDL.Commit).
const (
	CommitCommitted  = "committed"
	CommitRolledBack = "rolled_back"
	// CommitOpen: the recording ends with its transaction still open.
	CommitOpen = "open"
	// CommitCannotTell: its transaction ended in a way pg_stat_activity
	// does not tell (the backend left, or no COMMIT or ROLLBACK shows).
	CommitCannotTell = "cannot_tell"
)

// commitWatch follows a DDL's transaction from the grant of its lock to
// the transaction's end.
type commitWatch struct {
	on bool
	// xact is the transaction's xact_start; implicit that the statement
	// ran in a transaction of its own (xact_start = query_start).
	xact     int64
	implicit bool
	query    int64 // the statement's query_start
	// lastOpen and lastState: the last sample that showed the
	// transaction open, and its state then.
	lastOpen  int64
	lastState string
}

// watchCommit starts following d's transaction once its lock was seen
// granted in g.
func (t *tracker) watchCommit(d *ddlState, g *graph) {
	a := g.backends[d.backend]
	if a == nil {
		return
	}
	xact, query := d.xactStart, d.queryStart
	if xact == 0 {
		xact = a.XactStart
	}
	d.cw = commitWatch{on: true, xact: xact, implicit: xact != 0 && xact == query, query: query, lastOpen: d.lastWait, lastState: "active"}
	t.stepCommit(d, g)
}

// stepCommit advances a DDL's commit watch by one sample.
func (t *tracker) stepCommit(d *ddlState, g *graph) {
	w := &d.cw
	a := g.backends[d.backend]
	now := clock(g.ts)
	switch {
	case a == nil:
		w.on = false
		if op := t.opOn(d.backend.PID, "terminate", w.lastOpen-2e6, g.ts); op != nil {
			d.commit, d.commitEvidence = CommitRolledBack, fmt.Sprintf("%s; the backend was gone at %s with its transaction (begun at %s) open: a terminated transaction is rolled back", describeOp(op), now, clock(w.xact))
			return
		}
		d.commit, d.commitEvidence = CommitCannotTell, fmt.Sprintf("its transaction (begun at %s) was last seen open at %s (state %q) and the backend was gone at %s: it committed and disconnected, or it was terminated and rolled back — the recording cannot tell which", clock(w.xact), clock(w.lastOpen), w.lastState, now)
	case a.XactStart != 0 && (a.XactStart == w.xact || w.xact == 0):
		w.xact, w.lastOpen, w.lastState = a.XactStart, g.ts, a.State
	default:
		w.on = false
		d.commit, d.commitEvidence = xactEnd(w, a, g.ts)
	}
}

// xactEnd says how a transaction seen open ended, the session staying
// connected (a, at now).
func xactEnd(w *commitWatch, a *recording.Activity, now int64) (string, string) {
	if w.implicit {
		// Outside a transaction block the statement's transaction ends
		// with it, whatever the session runs next.
		next := ""
		if a.QueryStart != w.query {
			next = fmt.Sprintf(", and the session had gone on to another statement (at %s)", clock(a.QueryStart))
		}
		return CommitCommitted, fmt.Sprintf("it ran in a transaction of its own, which ended with the statement by %s (state %q)%s: committed (pg_stat_activity shows a statement that failed after getting its lock the same way)", clock(now), a.State, next)
	}
	if ending, ev := lastStatementEnds(w.lastState, w.lastOpen, a); ending != "" {
		if ending == EndingCommitted {
			return CommitCommitted, ev
		}
		return CommitRolledBack, ev
	}
	return CommitCannotTell, fmt.Sprintf("its transaction (begun at %s) was %q at %s; by %s it had ended and the session stayed connected (state %q), its last statement not a COMMIT or ROLLBACK seen: committed or rolled back — the recording cannot tell which", clock(w.xact), w.lastState, clock(w.lastOpen), clock(now), a.State)
}

// notEnding: statements endsXact matches that do not end the session's
// own transaction.
var notEnding = regexp.MustCompile(`(?i)^\s*(rollback|abort)(\s+(work|transaction))?\s+to\b|\bprepared\b`)

// lastStatementEnds reads how a transaction, last seen open at lastOpen in
// state prevState, ended from the session's last statement a.Query: a
// COMMIT (or END) run after lastOpen commits, unless the transaction had
// failed; a ROLLBACK (or ABORT) rolls back. "" when the last statement
// does not tell.
func lastStatementEnds(prevState string, lastOpen int64, a *recording.Activity) (ending, evidence string) {
	m := endsXact.FindStringSubmatch(a.Query)
	if m == nil || a.QueryStart < lastOpen || strings.Contains(a.State, "transaction") || notEnding.MatchString(a.Query) {
		return "", ""
	}
	stmt := strings.ToUpper(m[1])
	switch {
	case stmt == "ROLLBACK" || stmt == "ABORT":
		return EndingRolledBack, fmt.Sprintf("its last statement, %s at %s, rolled its transaction back (last seen open, %q, at %s); the session stayed connected (state %q)", stmt, clock(a.QueryStart), prevState, clock(lastOpen), a.State)
	case strings.Contains(prevState, "aborted"):
		return EndingRolledBack, fmt.Sprintf("its transaction was seen aborted at %s; its %s at %s rolled it back (the COMMIT of a failed transaction is a rollback)", clock(lastOpen), stmt, clock(a.QueryStart))
	}
	return EndingCommitted, fmt.Sprintf("its last statement, %s at %s, ended the transaction it had open (%q at %s); the session stayed connected (state %q): committed — unless a statement run between the two samples failed, which turns a COMMIT into a rollback", stmt, clock(a.QueryStart), prevState, clock(lastOpen), a.State)
}
