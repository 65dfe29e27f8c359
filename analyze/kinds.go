package analyze

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// This file turns what the tracker saw into the incident's kind and its
// kind-specific parts: online DDL and maintenance waits, hot-row churn,
// deadlock cycles, and the advice that follows from each.

var (
	onlineDDL   = regexp.MustCompile(`(?is)^\s*(create\s+(unique\s+)?index\s+concurrently|reindex\b.*\bconcurrently|drop\s+index\s+concurrently|alter\s+table\b.*\bdetach\s+partition\b.*\bconcurrently)`)
	maintQuery  = regexp.MustCompile(`(?is)^\s*(vacuum|analyze|analyse)\b`)
	counterStmt = regexp.MustCompile(`(?is)\bset\s+(\w+)\s*=\s*(\w+\.)?(\w+)\s*[+-]\s*\d`)
	forUpdate   = regexp.MustCompile(`(?is)\bfor\s+(no\s+key\s+)?update\b`)
	skipLocked  = regexp.MustCompile(`(?is)\bskip\s+locked\b`)
)

// ddlClass is the class of a strong relation lock's statement: VACUUM
// FULL is maintenance, everything else a schema change.
func ddlClass(a *recording.Activity, def string) string {
	if maintenance(a) {
		return DDLMaintenance
	}
	return def
}

// maintenance reports whether a backend runs VACUUM or ANALYZE (by hand or
// as autovacuum).
func maintenance(a *recording.Activity) bool {
	return a != nil && (a.BackendType == "autovacuum worker" || strings.HasPrefix(a.Query, "autovacuum:") || maintQuery.MatchString(a.Query))
}

// onlineTable is the table an online DDL works on: the relation it holds
// ShareUpdateExclusiveLock on (CREATE INDEX CONCURRENTLY holds it on the
// table and the new index), preferring one its statement names.
func onlineTable(g *graph, b Backend, rels map[int64]string) int64 {
	var first int64
	q := ""
	if a := g.backends[b]; a != nil {
		q = strings.ToLower(a.Query)
	}
	for _, l := range g.held[b] {
		if l.LockType != "relation" || l.Mode != "ShareUpdateExclusiveLock" {
			continue
		}
		if first == 0 {
			first = l.Relation
		}
		if n := bareName(relName(rels, l.Relation)); q != "" && strings.Contains(q, strings.ToLower(n)) && !strings.Contains(q, "index "+strings.ToLower(n)) {
			return l.Relation
		}
	}
	return first
}

// trackWait follows one wait of one session: its episode (for how long
// waits last), the object it is on and the statement behind it.
func (t *tracker) trackWait(inc *incState, g *graph, b Backend, w *wait) {
	k := episodeKey{b, w.tag}
	e := inc.episodes[k]
	if e != nil && (e.last != t.lastTS || (w.waitStart != 0 && e.waitStart != 0 && w.waitStart != e.waitStart)) {
		inc.closed = append(inc.closed, e.seconds())
		e = nil
	}
	if e == nil {
		e = &episode{waitStart: w.waitStart, first: g.ts}
		inc.episodes[k] = e
		obj, rel := t.waitObject(g, b, w)
		inc.objects[obj]++
		if rel != 0 {
			inc.relations[relName(t.rels, rel)] = true
		}
	}
	e.last = g.ts
	if a := g.backends[b]; a != nil && a.Query != "" {
		t.noteQuery(inc, b, a.Query)
	}
}

// closeEpisodes ends the waits not seen in this sample.
func (t *tracker) closeEpisodes(inc *incState, g *graph) {
	for k, e := range inc.episodes {
		if e.last != g.ts {
			inc.closed = append(inc.closed, e.seconds())
			delete(inc.episodes, k)
		}
	}
}

func (t *tracker) noteQuery(inc *incState, b Backend, q string) {
	q = oneLine(q, 200)
	if inc.queries[q] == nil {
		inc.queries[q] = map[Backend]bool{}
	}
	inc.queries[q][b] = true
}

// waitObject names what a wait is on, for people: a row (from the tuple
// lock the waiter queues on or holds), a relation, an advisory key.
func (t *tracker) waitObject(g *graph, b Backend, w *wait) (string, int64) {
	switch w.tag.locktype {
	case "tuple", "relation":
		return w.tag.describe(t.rels), w.tag.relation
	case "transactionid":
		// A row-lock waiter holds the tuple lock while it waits for the
		// row's locker to end.
		for _, l := range g.held[b] {
			if l.LockType == "tuple" {
				return tagOf(l).describe(t.rels), l.Relation
			}
		}
		return genericRow, 0
	}
	return w.tag.describe(t.rels), 0
}

// genericRow names a row wait whose row the sample does not show.
const genericRow = "a row locked by another transaction"

// cycleState is a deadlock cycle followed across samples.
type cycleState struct {
	members  []Backend
	info     []CycleMember
	waits    []tag
	modes    []string
	first    int64
	last     int64
	formed   int64 // the latest member's wait start, 0 when unknown
	victim   Backend
	evidence string
	// starts are the members' wait starts (PostgreSQL 14+, else 0);
	// likely is the member whose deadlock_timeout fired first, when no
	// sample shows the victim.
	starts    []int64
	likely    Backend
	resolved  bool
	lastGraph *graph
}

// findCycle returns a cycle of hard edges among the waiting sessions of
// one component, in order (each waits for the next), starting from its
// lowest pid; nil when there is none. A cycle through soft edges (queue
// order) is resolved by PostgreSQL reordering the queue, not by an abort.
func findCycle(g *graph, in map[Backend]bool) []Backend {
	next := map[Backend][]Backend{}
	for _, e := range g.edges {
		if e.Kind == EdgeHard && in[e.Waiter] && g.waiting(e.Blocker) {
			next[e.Waiter] = append(next[e.Waiter], e.Blocker)
		}
	}
	if len(next) < 2 {
		return nil
	}
	starts := make([]Backend, 0, len(next))
	for b := range next {
		starts = append(starts, b)
	}
	slices.SortFunc(starts, comparePID)
	for _, s := range starts {
		// Depth-first from s, looking for a path back to s.
		path := []Backend{s}
		onPath := map[Backend]bool{s: true}
		var dfs func(x Backend) bool
		dfs = func(x Backend) bool {
			for _, y := range next[x] {
				if y == s {
					return true
				}
				if onPath[y] || comparePID(y, s) < 0 {
					continue // a cycle through a lower pid is found from it
				}
				onPath[y] = true
				path = append(path, y)
				if dfs(y) {
					return true
				}
				path = path[:len(path)-1]
				delete(onPath, y)
			}
			return false
		}
		if dfs(s) {
			return path
		}
	}
	return nil
}

// noteCycle records a deadlock cycle seen in this sample.
func (t *tracker) noteCycle(inc *incState, g *graph, members []Backend) {
	c := inc.cycle
	if c == nil || c.resolved {
		c = &cycleState{first: g.ts}
		inc.cycle = c
	}
	c.members, c.last, c.lastGraph = members, g.ts, g
	c.info = c.info[:0]
	c.waits, c.modes, c.starts = c.waits[:0], c.modes[:0], c.starts[:0]
	for i, b := range members {
		w := g.waits[b]
		m := CycleMember{Session: t.session(g, b), WaitsFor: w.mode + " on " + w.tag.describe(t.rels), HeldBy: members[(i+1)%len(members)].PID}
		if a := g.backends[b]; a != nil {
			t.noteQuery(inc, b, a.Query)
		}
		c.info = append(c.info, m)
		c.waits = append(c.waits, w.tag)
		c.modes = append(c.modes, w.mode)
		c.starts = append(c.starts, w.waitStart)
		c.formed = max(c.formed, w.waitStart)
	}
}

// resolveCycle finds the victim of a cycle that is gone in this sample:
// the member whose wait ended while the member it waited for still held a
// conflicting lock on the same object — its transaction was aborted (or
// it left). The others go on once the victim's locks are released.
func (t *tracker) resolveCycle(inc *incState, g *graph) {
	c := inc.cycle
	if c == nil || c.resolved || c.last == g.ts {
		return
	}
	c.resolved = true
	for i, b := range c.members {
		if w := g.waits[b]; w != nil && w.tag == c.waits[i] {
			continue // still waiting for the same lock
		}
		holder := c.members[(i+1)%len(c.members)]
		stillHeld := false
		for _, l := range g.held[holder] {
			if tagOf(l) == c.waits[i] && Conflicts(c.modes[i], l.Mode) {
				stillHeld = true
			}
		}
		if !stillHeld {
			continue
		}
		c.victim = b
		a := g.backends[b]
		switch {
		case a == nil:
			c.evidence = fmt.Sprintf("by %s pid %d stopped waiting for %s while pid %d still held it, and its backend was gone", clock(g.ts), b.PID, c.info[i].WaitsFor, holder.PID)
		case a.State == "idle in transaction (aborted)":
			c.evidence = fmt.Sprintf("by %s pid %d stopped waiting for %s while pid %d still held it; its transaction is aborted (state %q): PostgreSQL's deadlock detector chose it", clock(g.ts), b.PID, c.info[i].WaitsFor, holder.PID, a.State)
		default:
			c.evidence = fmt.Sprintf("by %s pid %d stopped waiting for %s while pid %d still held it (state %q): its statement failed with deadlock detected (40P01)", clock(g.ts), b.PID, c.info[i].WaitsFor, holder.PID, a.State)
		}
		return
	}
	for i, b := range c.members {
		if a := g.backends[b]; a != nil && a.State == "idle in transaction (aborted)" && g.waits[b] == nil {
			c.victim = b
			c.evidence = fmt.Sprintf("by %s pid %d had stopped waiting for %s and its transaction is aborted (state %q): PostgreSQL's deadlock detector chose it", clock(g.ts), b.PID, c.info[i].WaitsFor, a.State)
			return
		}
	}
	// No sample shows the abort: the member that began waiting first is
	// the likely victim (its deadlock_timeout fired first, if the members
	// share the setting) — said as a likelihood, not as what happened.
	first := -1
	for i, st := range c.starts {
		if st != 0 && (first < 0 || st < c.starts[first]) {
			first = i
		}
	}
	if first >= 0 && !slices.Contains(c.starts, 0) {
		c.likely = c.members[first]
	}
	c.evidence = fmt.Sprintf("the cycle was gone by %s, but no member stopped waiting while the lock it waited for was still held: the recording cannot tell which member was aborted (the sample after the abort was not taken in time)", clock(g.ts))
}

// exportDeadlock projects a cycle into the incident model.
func (c *cycleState) export() *Deadlock {
	d := &Deadlock{Members: slices.Clone(c.info), FirstSeen: time.UnixMicro(c.first).UTC(), LastSeen: time.UnixMicro(c.last).UTC(),
		Victim: c.victim.PID, VictimEvidence: c.evidence, LikelyVictim: c.likely.PID}
	from := c.first
	if c.formed != 0 && c.formed < from {
		from = c.formed
	}
	d.Stood = round3(float64(c.last-from) / 1e6)
	return d
}

// kind names what sort of incident this is, from the strongest evidence
// down: a deadlock cycle, a write-blocking DDL, an online DDL or
// maintenance waiting on older transactions, advisory locks, row locks
// (churn or a persistent holder), anything else.
func (inc *incState) kind() string {
	classes := map[string]bool{}
	for _, d := range inc.ddls {
		classes[d.class] = true
	}
	switch {
	case inc.cycle != nil:
		return KindDeadlock
	case inc.strong:
		return KindDDLLockQueue
	case classes[DDLOnline]:
		return KindOnlineDDL
	case classes[DDLMaintenance]:
		return KindMaintenance
	case inc.advisory && !inc.nonAdvisory:
		return KindAdvisory
	case inc.rowOnly && inc.churn():
		return KindHotRow
	case inc.rowOnly:
		return KindRowLock
	}
	return KindOther
}

// churn reports whether the incident's blocking came from holders that
// changed from sample to sample: transient roots and no persistent one.
func (inc *incState) churn() bool {
	transient, persistent := 0, 0
	for _, r := range inc.roots {
		if r.persistent() {
			persistent++
		} else {
			transient++
		}
	}
	return transient > 0 && persistent == 0
}

// contention summarises row or advisory lock contention.
func (inc *incState) contention(kind string) *Contention {
	switch kind {
	case KindHotRow, KindRowLock, KindAdvisory, KindOther:
	default:
		return nil
	}
	c := &Contention{Statements: []Statement{}}
	for _, r := range inc.roots {
		if !r.persistent() {
			c.ChurnHolders++
		}
	}
	c.Churn = inc.churn()
	best := 0
	for obj, n := range inc.objects {
		if obj == genericRow && len(inc.objects) > 1 {
			continue // a named row or relation says more
		}
		if n > best || (n == best && obj < c.Object) {
			c.Object, best = obj, n
		}
	}
	waits := slices.Clone(inc.closed)
	for _, e := range inc.episodes {
		waits = append(waits, e.seconds())
	}
	slices.Sort(waits)
	c.Waits = len(waits)
	if n := len(waits); n > 0 {
		c.MaxWait = round3(waits[n-1])
		c.P95Wait = round3(waits[int(math.Ceil(0.95*float64(n)))-1])
	}
	if d := float64(inc.lastSeen-inc.start) / 1e6; d > 0 {
		c.WaitsPerSecond = round3(float64(c.Waits) / d)
	}
	for q, bs := range inc.queries {
		c.Statements = append(c.Statements, Statement{Query: q, Sessions: len(bs)})
	}
	slices.SortFunc(c.Statements, func(a, b Statement) int {
		return cmp.Or(b.Sessions-a.Sessions, strings.Compare(a.Query, b.Query))
	})
	if len(c.Statements) > 5 {
		c.Statements = c.Statements[:5]
	}
	return c
}

// advice is what would prevent the incident, from what the recording
// shows of it.
func advice(x *Incident) []Advice {
	out := []Advice{}
	add := func(a, ev string) { out = append(out, Advice{a, ev}) }
	stmts := func(match func(string) bool) []string {
		var qs []string
		if x.Contention != nil {
			for _, s := range x.Contention.Statements {
				if match(s.Query) {
					qs = append(qs, s.Query)
				}
			}
		}
		return qs
	}
	switch x.Kind {
	case KindDeadlock:
		d := x.Deadlock
		var order []string
		for _, m := range d.Members {
			order = append(order, fmt.Sprintf("pid %d waits for %s held by pid %d", m.PID, m.WaitsFor, m.HeldBy))
		}
		add("take locks in one consistent order in every code path (for example, update rows in primary-key order, or lock the parent row first) so that no two transactions wait for each other",
			"the cycle: "+strings.Join(order, "; "))
		add("retry a transaction that fails with SQLSTATE 40P01 (deadlock detected): PostgreSQL aborts one member of every cycle",
			"victim: "+d.VictimEvidence)
	case KindHotRow, KindRowLock:
		c := x.Contention
		if c == nil {
			break
		}
		if qs := stmts(func(q string) bool { return counterStmt.MatchString(q) }); len(qs) > 0 {
			add("replace the counter row by a sequence (nextval) or by inserting one row per event and summing them: every transaction that increments it waits for the previous one to commit",
				"counter updates on "+c.Object+": "+strings.Join(qs, " | "))
		}
		if qs := stmts(func(q string) bool { return forUpdate.MatchString(q) && !skipLocked.MatchString(q) }); len(qs) > 0 {
			add("claim queued jobs with SELECT … FOR UPDATE SKIP LOCKED, so workers take different rows instead of waiting for each other",
				"row locks taken without SKIP LOCKED: "+strings.Join(qs, " | "))
		}
		add("keep the transactions that lock "+c.Object+" short: do the slow work before taking the row lock, and commit right after it",
			fmt.Sprintf("%d waits (%.1f a second), max %.3f s, p95 %.3f s", c.Waits, c.WaitsPerSecond, c.MaxWait, c.P95Wait))
		for _, r := range x.RootBlockers {
			if strings.HasPrefix(r.State, "idle in transaction") {
				add("set idle_in_transaction_session_timeout for the application's role, so a transaction left open cannot hold rows for long",
					rootEvidence(r))
				break
			}
		}
	case KindAdvisory:
		if c := x.Contention; c != nil {
			add("use pg_try_advisory_xact_lock (or a lock_timeout) where waiting for "+c.Object+" is not required, and keep the critical section short",
				fmt.Sprintf("%d waits, max %.3f s", c.Waits, c.MaxWait))
		}
	case KindOnlineDDL:
		if d := x.DDL; d != nil {
			add("run online index builds when no long transaction is open, and set idle_in_transaction_session_timeout and statement_timeout so old transactions cannot hold them up",
				d.WaitPhase)
		}
	}
	for _, r := range x.RootBlockers {
		if r.PID == 0 && r.GID != "" {
			add("alert on prepared transactions older than a minute (SELECT gid, prepared FROM pg_prepared_xacts WHERE prepared < now() - interval '1 minute') and resolve them through their transaction manager",
				fmt.Sprintf("prepared transaction %s was %.0f s old when first seen blocking", quoteLiteral(r.GID), r.TransactionAge))
		}
	}
	return out
}

// onlinePhase says what an online DDL waited for: the older transactions
// whose virtualxid locks it waited on, with their state and age.
func onlinePhase(d *ddlState, inc *incState) string {
	var parts []string
	for _, r := range sortedRoots(inc.roots) {
		b := Backend{r.info.PID, r.info.BackendStart.UnixMicro()}
		if !d.olderSeen[b] {
			continue
		}
		parts = append(parts, fmt.Sprintf("pid %d (%s, transaction %.1f s old)", r.info.PID, orUnknown(r.info.State), r.xactAge))
	}
	verb := strings.ToUpper(firstWords(d.info.Query, 4))
	if d.tag.locktype == "relation" {
		return fmt.Sprintf("%s waited for its own %s on %s, which a conflicting lock (another DDL, an online DDL or a VACUUM) held", verb, d.mode, d.relation)
	}
	if len(parts) == 0 {
		return verb + " waited for older transactions to finish (virtualxid locks)"
	}
	return fmt.Sprintf("%s waited for %d older transaction(s) to finish (their virtualxid locks): %s", verb, len(parts), strings.Join(parts, ", "))
}
