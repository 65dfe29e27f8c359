package analyze

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// tracker follows incidents from one full sample to the next.
type tracker struct {
	// odoo: the database is an Odoo database (it has ir_module_module).
	odoo        bool
	minDuration time.Duration
	// mergeWithin rejoins a queue that re-forms this soon after draining
	// around the same root blocker or DDL (lock_timeout retries).
	mergeWithin time.Duration
	rels        map[int64]string
	gaps        []Gap
	open        []*incState
	done        []*incState
	nextID      int
	lastTS      int64
	lastGraph   *graph
	// ops are the operator statements seen (opSeen: by run), stmts the
	// last lock-taking statement seen per backend.
	ops    []OperatorAction
	opSeen map[opKey]bool
	stmts  map[Backend]seenStmt
}

func newTracker(minDuration, mergeWithin time.Duration, rels map[int64]string, gaps []Gap) *tracker {
	return &tracker{minDuration: minDuration, mergeWithin: mergeWithin, rels: rels, gaps: gaps}
}

// reopen finds a recently drained incident that this component continues:
// the same root blocker or DDL, within mergeWithin.
func (t *tracker) reopen(g *graph, comp []Backend) *incState {
	for i := len(t.done) - 1; i >= 0; i-- {
		inc := t.done[i]
		if time.Duration(g.ts-inc.end)*time.Microsecond > t.mergeWithin {
			continue
		}
		for _, b := range comp {
			_, root := inc.roots[b]
			_, ddl := inc.ddls[b]
			if root || ddl {
				t.done = slices.Delete(t.done, i, i+1)
				inc.end = 0
				t.open = append(t.open, inc)
				return inc
			}
		}
	}
	return nil
}

// gapOverlap returns how much of [a, b] (µs) lies in recorded gaps.
func (t *tracker) gapOverlap(a, b int64) int64 {
	var n int64
	for _, g := range t.gaps {
		s, e := max(a, g.Start.UnixMicro()), min(b, g.End.UnixMicro())
		if e > s {
			n += e - s
		}
	}
	return n
}

func (t *tracker) gapsWithin(a, b int64) []Gap {
	var out []Gap
	for _, g := range t.gaps {
		if g.End.UnixMicro() > a && g.Start.UnixMicro() < b {
			out = append(out, g)
		}
	}
	return out
}

// observe folds one full sample's graph into the incidents.
func (t *tracker) observe(g *graph) {
	if g.backends != nil {
		t.noticeOperators(g)
	}
	t.advance(g.ts)
	matched := map[*incState]bool{}
	for _, comp := range g.components() {
		hasWait := slices.ContainsFunc(comp, g.waiting)
		if !hasWait {
			continue
		}
		var hits []*incState
		for _, inc := range t.open {
			for _, b := range comp {
				if inc.lastNodes[b] {
					hits = append(hits, inc)
					break
				}
			}
		}
		var inc *incState
		switch len(hits) {
		case 0:
			if inc = t.reopen(g, comp); inc != nil {
				break
			}
			t.nextID++
			inc = &incState{id: t.nextID, start: g.ts, relations: map[string]bool{}, roots: map[Backend]*rootState{},
				waiters: map[Backend]*waiterState{}, ddls: map[Backend]*ddlState{}, edgeKinds: map[string]int{}, rowOnly: true,
				protected: map[Backend]*Protected{}, lastQueue: map[string]queueState{},
				episodes: map[episodeKey]*episode{}, objects: map[string]int{}, queries: map[string]map[Backend]bool{}}
			t.open = append(t.open, inc)
		default:
			inc = hits[0]
			for _, other := range hits[1:] {
				inc.merge(other)
				t.open = slices.DeleteFunc(t.open, func(x *incState) bool { return x == other })
			}
		}
		if matched[inc] {
			inc.lastNodes = unionNodes(inc.lastNodes, comp)
		} else {
			inc.lastNodes = unionNodes(nil, comp)
		}
		matched[inc] = true
		t.update(inc, g, comp)
	}
	// Incidents no longer seen have drained.
	var still []*incState
	for _, inc := range t.open {
		if matched[inc] {
			still = append(still, inc)
			continue
		}
		inc.end = g.ts
		inc.drains = append(inc.drains, g.ts)
		inc.gaps = append(inc.gaps, t.gapsWithin(inc.lastSeen, g.ts)...)
		for b, rs := range inc.roots {
			if rs.gone == 0 {
				t.rootGone(rs, b, g)
			}
		}
		// Every queue of the incident is empty now.
		for _, rel := range sortedKeys(queueRels(inc.lastQueue)) {
			if q := inc.lastQueue[rel]; q.depth > 0 {
				inc.queue = append(inc.queue, emptied(rel, q, g.ts))
				inc.lastQueue[rel] = queueState{ts: g.ts}
			}
		}
		t.finishDDLs(inc, g)
		t.resolveCycle(inc, g)
		t.closeEpisodes(inc, g)
		t.done = append(t.done, inc)
	}
	t.open = still
	// Sessions that stopped waiting or blocking inside open incidents.
	for _, inc := range t.open {
		t.finishDDLs(inc, g)
		t.resolveCycle(inc, g)
	}
	t.followAll(g)
	t.lastTS = g.ts
	t.lastGraph = g
}

// advance counts the time since the previous full sample, less any gap,
// into the open incidents: what was seen then is taken to have lasted
// until now.
func (t *tracker) advance(ts int64) {
	var dt float64
	if t.lastTS != 0 {
		d := ts - t.lastTS - t.gapOverlap(t.lastTS, ts)
		dt = float64(max(d, 0)) / 1e6
	}
	for _, inc := range t.open {
		inc.waiterSec += float64(inc.lastCount) * dt
		if n := len(inc.series); n > 0 && inc.series[n-1].ts == t.lastTS {
			inc.series[n-1].dt = dt
		}
		for _, r := range inc.roots {
			if r.gone == 0 {
				r.waiterSec += float64(r.lastBehind) * dt
			}
		}
		for _, w := range inc.waiters {
			if w.last == t.lastTS {
				w.waited += dt
			}
		}
		for _, d := range inc.ddls {
			if d.waiting {
				d.waited += dt
			}
		}
	}
}

func unionNodes(m map[Backend]bool, comp []Backend) map[Backend]bool {
	if m == nil {
		m = make(map[Backend]bool, len(comp))
	}
	for _, b := range comp {
		m[b] = true
	}
	return m
}

func (inc *incState) merge(o *incState) {
	inc.start = min(inc.start, o.start)
	inc.waiterSec += o.waiterSec
	if o.peak > inc.peak {
		inc.peak, inc.peakAt = o.peak, o.peakAt
		inc.peakConnected, inc.peakWaiting = o.peakConnected, o.peakWaiting
	}
	inc.samples = max(inc.samples, o.samples)
	for k := range o.relations {
		inc.relations[k] = true
	}
	for k, v := range o.roots {
		if _, ok := inc.roots[k]; !ok {
			inc.roots[k] = v
		}
	}
	for k, v := range o.waiters {
		if _, ok := inc.waiters[k]; !ok {
			inc.waiters[k] = v
		}
	}
	for k, v := range o.ddls {
		if _, ok := inc.ddls[k]; !ok {
			inc.ddls[k] = v
		}
	}
	inc.queue = mergeQueues(inc.queue, o.queue)
	inc.series = append(inc.series, o.series...)
	inc.edgeLog = append(inc.edgeLog, o.edgeLog...)
	slices.SortStableFunc(inc.edgeLog, func(a, b EdgeRecord) int { return a.TS.Compare(b.TS) })
	slices.SortFunc(inc.series, func(a, b point) int { return int(a.ts - b.ts) })
	for k, v := range o.edgeKinds {
		inc.edgeKinds[k] += v
	}
	inc.strong = inc.strong || o.strong
	inc.rowOnly = inc.rowOnly && o.rowOnly
	inc.gaps = append(inc.gaps, o.gaps...)
	inc.drains = append(inc.drains, o.drains...)
	slices.Sort(inc.drains)
	for k, v := range o.protected {
		if _, ok := inc.protected[k]; !ok {
			inc.protected[k] = v
		}
	}
}

// mergeQueues joins two incidents' queue series in time order. Where both
// saw the same relation at the same moment their waiters are distinct
// sessions: depths and rates add up; the head stays the first's.
func mergeQueues(a, b []QueuePoint) []QueuePoint {
	out := append(a, b...)
	slices.SortStableFunc(out, func(x, y QueuePoint) int {
		if c := x.TS.Compare(y.TS); c != 0 {
			return c
		}
		return strings.Compare(x.Relation, y.Relation)
	})
	n := 0
	for _, q := range out {
		if n > 0 && out[n-1].TS.Equal(q.TS) && out[n-1].Relation == q.Relation {
			p := &out[n-1]
			p.Depth += q.Depth
			p.Rate, p.RateSmoothed = round3(p.Rate+q.Rate), round3(p.RateSmoothed+q.RateSmoothed)
			continue
		}
		out[n] = q
		n++
	}
	return out[:n]
}

// update records what one sample shows of an incident's component, one
// concern at a time, in this order: the waits (and the DDL and kinds they
// show), deadlock cycles, the sample's point in the series, the queue on
// each relation, the wait-for edges, the root blockers, the protected
// sessions.
func (t *tracker) update(inc *incState, g *graph, comp []Backend) {
	in := unionNodes(nil, comp)
	if inc.samples > 0 {
		inc.gaps = append(inc.gaps, t.gapsWithin(inc.lastSeen, g.ts)...)
	}
	inc.samples++
	inc.lastSeen = g.ts
	count, queues := t.noteWaits(inc, g, comp)
	t.closeEpisodes(inc, g)
	if c := findCycle(g, in); c != nil {
		t.noteCycle(inc, g, c)
	}
	t.notePoint(inc, g, comp, in, count)
	t.noteQueues(inc, g, queues)
	t.noteEdges(inc, g, in)
	t.noteRoots(inc, g, in)
	t.protect(inc, g, in)
}

// noteWaits follows each waiting session of the component: its wait, the
// DDL or maintenance it shows, the lock types that decide the kind. It
// returns how many waited and the waits on each relation's queue.
func (t *tracker) noteWaits(inc *incState, g *graph, comp []Backend) (int, map[int64][]*wait) {
	count := 0
	queues := map[int64][]*wait{}
	for _, b := range comp {
		w, ok := g.waits[b]
		if !ok {
			continue
		}
		count++
		ws, ok := inc.waiters[b]
		if !ok {
			ws = &waiterState{info: t.session(g, b), first: g.ts}
			ws.info.Mode, ws.info.Target = w.mode, w.tag.describe(t.rels)
			inc.waiters[b] = ws
		}
		ws.last = g.ts
		t.trackWait(inc, g, b, w)
		switch w.tag.locktype {
		case "relation", "tuple":
			inc.relations[relName(t.rels, w.tag.relation)] = true
			queues[w.tag.relation] = append(queues[w.tag.relation], w)
			if w.tag.locktype == "relation" {
				inc.rowOnly = false
			}
			switch {
			case w.tag.locktype == "relation" && strongMode(w.mode):
				inc.strong = true
				t.ddl(inc, g, b, w.tag, w.tag.relation, w.mode, false, ddlClass(g.backends[b], DDLSchema))
			case w.tag.locktype == "relation" && maintenance(g.backends[b]):
				t.ddl(inc, g, b, w.tag, w.tag.relation, w.mode, false, DDLMaintenance)
			case w.tag.locktype == "relation" && g.backends[b] != nil && onlineDDL.MatchString(g.backends[b].Query):
				// An online DDL waiting for its own table lock
				// (ShareUpdateExclusiveLock) behind another DDL or VACUUM.
				t.ddl(inc, g, b, w.tag, w.tag.relation, w.mode, false, DDLOnline)
			}
		case "transactionid":
		case "virtualxid":
			inc.rowOnly = false
			if a := g.backends[b]; a != nil && onlineDDL.MatchString(a.Query) {
				t.ddl(inc, g, b, w.tag, onlineTable(g, b, t.rels), w.mode, false, DDLOnline)
			}
		default:
			inc.rowOnly = false
		}
		if w.tag.locktype == "advisory" {
			inc.advisory = true
		} else {
			inc.nonAdvisory = true
		}
	}
	return count, queues
}

// notePoint adds the sample to the incident's series (waiters, those
// behind each DDL, by application) and keeps the peak.
func (t *tracker) notePoint(inc *incState, g *graph, comp []Backend, in map[Backend]bool, count int) {
	inc.lastCount = count
	pt := point{ts: g.ts, waiters: count, behind: map[Backend]int{}, byApp: map[string]int{}}
	for _, b := range comp {
		if _, ok := g.waits[b]; ok {
			pt.byApp[appRole(appGroupOf(g, b), inc.waiters[b].info.Role)]++
		}
	}
	for b := range inc.ddls {
		if in[b] {
			pt.behind[b] = len(g.behind(b))
		}
	}
	inc.series = append(inc.series, pt)
	if count > inc.peak {
		inc.peak, inc.peakAt = count, g.ts
		inc.peakConnected = map[string]int{}
		for b, a := range g.backends {
			if a.BackendType == "" || a.BackendType == "client backend" {
				role, _ := classify(g, b, t.rels, t.odoo)
				inc.peakConnected[appRole(appGroupOf(g, b), role)]++
			}
		}
		inc.peakWaiting = pt.byApp
	}
}

// noteQueues records each relation's queue depth and growth, and a zero
// for a relation whose queue emptied since its last sample.
func (t *tracker) noteQueues(inc *incState, g *graph, queues map[int64][]*wait) {
	rels := make([]int64, 0, len(queues))
	for rel := range queues {
		rels = append(rels, rel)
	}
	slices.Sort(rels)
	// A relation whose queue emptied since its last sample: zero now.
	seenRel := map[string]bool{}
	for _, rel := range rels {
		seenRel[relName(t.rels, rel)] = true
	}
	for _, rel := range sortedKeys(queueRels(inc.lastQueue)) {
		if q := inc.lastQueue[rel]; q.depth > 0 && !seenRel[rel] {
			inc.queue = append(inc.queue, emptied(rel, q, g.ts))
			inc.lastQueue[rel] = queueState{ts: g.ts}
		}
	}
	for _, rel := range rels {
		ws := queues[rel]
		slices.SortFunc(ws, func(a, b *wait) int {
			if a.waitStart != b.waitStart && a.waitStart != 0 && b.waitStart != 0 {
				if a.waitStart < b.waitStart {
					return -1
				}
				return 1
			}
			return comparePID(a.backend, b.backend)
		})
		qp := QueuePoint{TS: time.UnixMicro(g.ts).UTC(), Relation: relName(t.rels, rel),
			Depth: len(ws), Head: ws[0].backend.PID, HeadMode: ws[0].mode}
		// Growth in waiters per second since the relation's previous
		// sample, and smoothed over about two seconds.
		if prev, ok := inc.lastQueue[qp.Relation]; ok && g.ts > prev.ts {
			dt := float64(g.ts-prev.ts) / 1e6
			qp.Rate = round3(float64(qp.Depth-prev.depth) / dt)
			alpha := 1 - math.Exp(-dt/queueSmoothing)
			qp.RateSmoothed = round3(prev.smoothed + alpha*(qp.Rate-prev.smoothed))
		}
		inc.lastQueue[qp.Relation] = queueState{ts: g.ts, depth: qp.Depth, smoothed: qp.RateSmoothed}
		inc.queue = append(inc.queue, qp)
	}
}

// noteEdges logs the component's wait-for edges.
func (t *tracker) noteEdges(inc *incState, g *graph, in map[Backend]bool) {
	for _, e := range g.edges {
		if in[e.Waiter] {
			inc.edgeKinds[e.Kind]++
			inc.edgeLog = append(inc.edgeLog, EdgeRecord{TS: time.UnixMicro(g.ts).UTC(), WaiterPID: e.Waiter.PID,
				WaiterStart: time.UnixMicro(e.Waiter.Start).UTC(), BlockerPID: e.Blocker.PID,
				BlockerStart: time.UnixMicro(e.Blocker.Start).UTC(), Kind: e.Kind, Observed: e.Observed})
		}
	}
}

// noteRoots follows the root blockers (the locks of theirs that matter,
// how long the same transaction blocked) and settles those gone.
func (t *tracker) noteRoots(inc *incState, g *graph, in map[Backend]bool) {
	// Root blockers, and the locks of theirs that matter.
	roots := map[Backend]bool{}
	for _, r := range g.roots() {
		if !in[r] {
			continue
		}
		roots[r] = true
		rs, ok := inc.roots[r]
		if !ok {
			rs = &rootState{info: t.session(g, r), first: g.ts}
			if a := g.backends[r]; a != nil && a.XactStart != 0 {
				rs.xactAge = float64(g.ts-a.XactStart) / 1e6
			}
			if p := g.prepared[r]; p != nil {
				rs.xactAge = float64(g.ts-p.Prepared) / 1e6
			}
			if a := g.backends[r]; a != nil && a.State == "idle in transaction" {
				rs.idleSince = a.StateChange
			}
			inc.roots[r] = rs
		}
		xact := int64(0)
		if a := g.backends[r]; a != nil {
			xact = a.XactStart
		}
		if r.PID == 0 {
			rs.prepared = true
		}
		if rs.streakStart == 0 || rs.xact != xact || rs.last != t.lastTS {
			rs.streakStart = g.ts // a new run: first seen, a new transaction, or after a sample without it
		}
		rs.xact = xact
		rs.maxStreak = max(rs.maxStreak, g.ts-rs.streakStart)
		rs.last, rs.gone = g.ts, 0
		if a := g.backends[r]; a != nil {
			rs.lastAct = *a
		}
		rs.info.setRole(classify(g, r, t.rels, t.odoo))
		for _, e := range g.edges {
			if e.Blocker == r {
				if w := g.waits[e.Waiter]; w != nil && w.tag.locktype != "transactionid" && w.tag.locktype != "tuple" && w.tag.locktype != "advisory" {
					rs.nonRow = true
				}
			}
		}
		behind := g.behind(r)
		rs.lastBehind = len(behind)
		rs.peakBehind = max(rs.peakBehind, len(behind))
		// The granted locks its direct waiters wait for.
		for _, e := range g.edges {
			if e.Blocker != r || e.Kind != EdgeHard {
				continue
			}
			w := g.waits[e.Waiter]
			for _, l := range g.held[r] {
				if tagOf(l) == w.tag && Conflicts(w.mode, l.Mode) {
					hl := HeldLock{Target: w.tag.describe(t.rels), Mode: l.Mode}
					if !slices.Contains(rs.locks, hl) {
						rs.locks = append(rs.locks, hl)
					}
					if l.LockType == "relation" {
						inc.relations[relName(t.rels, l.Relation)] = true
						if strongMode(l.Mode) {
							inc.strong = true
							t.ddl(inc, g, r, w.tag, w.tag.relation, l.Mode, true, ddlClass(g.backends[r], DDLSchema))
						}
					}
				}
			}
		}
	}
	for b, rs := range inc.roots {
		if !roots[b] && rs.gone == 0 {
			t.rootGone(rs, b, g)
		}
	}
}

// protect notes sessions with protected roles that are in the incident or
// hold locks on its relations (a pg_dump reading the table: an innocent
// bystander that containment must leave alone).
func (t *tracker) protect(inc *incState, g *graph, in map[Backend]bool) {
	for b, locks := range g.held {
		if _, ok := inc.protected[b]; ok {
			continue
		}
		touches := in[b]
		for _, l := range locks {
			if l.LockType == "relation" && inc.relations[relName(t.rels, l.Relation)] {
				touches = true
			}
		}
		if !touches {
			continue
		}
		role, evidence := classify(g, b, t.rels, t.odoo)
		s := t.session(g, b)
		wraparound := role == RoleAutovacuum && AntiWraparound(s.Query)
		if !protectedRole(role) && !wraparound {
			continue
		}
		if wraparound {
			why := "an anti-wraparound autovacuum (" + oneLine(s.Query, 100) + ")"
			inc.protected[b] = &Protected{Session: s, Reason: why + ": PostgreSQL does not cancel it for lock waiters, it must finish to protect the database from transaction ID wraparound, and a cancelled one starts again at once"}
			continue
		}
		why := "a " + role + " session (" + evidence + ")"
		if in[b] {
			why += " inside the lock queue"
		} else {
			why += " holding locks on " + strings.Join(sortedKeys(inc.relations), ", ") + " but blocking no one"
		}
		inc.protected[b] = &Protected{Session: s, Reason: why + ": the runbook says not to cancel or terminate it unless explicitly validated"}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ddl notes a strong relation lock request (or a held one that blocks).
func (t *tracker) ddl(inc *incState, g *graph, b Backend, tg tag, rel int64, mode string, held bool, class string) {
	d, ok := inc.ddls[b]
	if !ok {
		d = &ddlState{backend: b, info: t.session(g, b), relation: relName(t.rels, rel), mode: mode, class: class}
		inc.ddls[b] = d
		t.ddlStatement(d, g, held)
	}
	d.behind = max(d.behind, len(g.behind(b)))
	if held {
		d.held = true
		return
	}
	if a := g.backends[b]; a != nil {
		d.queryStart, d.lastQuery = a.QueryStart, a.Query
	}
	d.follow = false
	if !d.waiting {
		d.attempts++
		d.curStartTS, d.waitedBefore = g.ts, d.waited
		if w := g.waits[b]; w != nil && w.waitStart != 0 && w.waitStart < g.ts {
			d.curStartTS = w.waitStart
		}
	}
	if d.firstWait == 0 {
		d.firstWait = g.ts
	}
	d.waiting, d.lastWait, d.tag = true, g.ts, tg
	d.blockers = d.blockers[:0]
	for _, e := range g.edges {
		if e.Waiter == b && e.Kind == EdgeHard {
			d.blockers = append(d.blockers, e.Blocker)
			if d.class == DDLOnline {
				if d.olderSeen == nil {
					d.olderSeen = map[Backend]bool{}
				}
				d.olderSeen[e.Blocker] = true
			}
		}
	}
}

// finishDDLs settles the outcome of DDL waits that ended in this sample.
func (t *tracker) finishDDLs(inc *incState, g *graph) {
	for b, d := range inc.ddls {
		if !d.waiting || d.lastWait == g.ts {
			continue
		}
		d.waiting = false
		d.settled = g.ts
		// A wait ends in a grant only once the conflicting holders are
		// gone; if one still holds its lock, the DDL gave up.
		d.outcome, d.evidence = t.settleWait(inc, d, g)
		if a := g.backends[b]; a != nil && (d.outcome == OutcomeGaveUp || d.outcome == OutcomeCancelled) && a.StateChange > d.curStartTS {
			d.gaveUpAfter = append(d.gaveUpAfter, a.StateChange-d.curStartTS)
		}
		end := time.UnixMicro(g.ts).UTC()
		d.log = append(d.log, Attempt{Start: time.UnixMicro(d.curStartTS).UTC(), End: &end, Waited: round3(d.waited - d.waitedBefore),
			Outcome: d.outcome, Evidence: d.evidence})
		if (d.outcome == OutcomeGaveUp || d.outcome == OutcomeCancelled || d.outcome == OutcomeUnknown) && g.backends[b] != nil {
			d.follow, d.followUntil = true, g.ts+followFor
		}
		if d.outcome == OutcomeGranted {
			t.watchCommit(d, g)
		}
	}
}

// followFor is how long a DDL session is watched after a wait it gave up,
// for a retry that succeeds without being seen waiting.
const followFor = int64(60e6)

// emptied is the point where a relation's queue is seen empty again.
func emptied(rel string, prev queueState, ts int64) QueuePoint {
	dt := max(float64(ts-prev.ts)/1e6, 1e-3)
	rate := -float64(prev.depth) / dt
	alpha := 1 - math.Exp(-dt/queueSmoothing)
	return QueuePoint{TS: time.UnixMicro(ts).UTC(), Relation: rel, Rate: round3(rate), RateSmoothed: round3(prev.smoothed + alpha*(rate-prev.smoothed))}
}

func queueRels(m map[string]queueState) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// ddlStatement notes, when the DDL is first seen, whether the statement
// it runs is what took (or asks for) its lock, and the statement seen
// taking it.
func (t *tracker) ddlStatement(d *ddlState, g *graph, held bool) {
	a := g.backends[d.backend]
	if a == nil {
		return
	}
	d.xactStart = a.XactStart
	if !held || takesLock(a.Query) {
		d.lockStmt = a.Query
		return
	}
	if s, ok := t.stmts[d.backend]; ok && s.xactStart == a.XactStart && a.XactStart != 0 {
		d.lockStmt = s.query
	}
	note := "its lock was taken earlier in its transaction"
	if a.XactStart != 0 {
		note += " (begun at " + clock(a.XactStart) + ")"
	}
	note += "; the statement it ran when first seen is not what took it"
	if d.lockStmt == "" {
		note += ", and no sample saw the statement that did"
	}
	d.queryNote = note
}

// stillHolds reports a backend that blocked the DDL in its last waiting
// sample and still holds a conflicting lock on the same object.
func stillHolds(g *graph, d *ddlState) (Backend, string, bool) {
	for _, h := range d.blockers {
		for _, l := range g.held[h] {
			if tagOf(l) == d.tag && Conflicts(d.mode, l.Mode) {
				return h, l.Mode, true
			}
		}
	}
	return Backend{}, "", false
}

func holdsStrong(g *graph, b Backend, mode string) bool {
	for _, l := range g.held[b] {
		if l.LockType == "relation" && l.Mode == mode {
			return true
		}
	}
	return false
}

func clock(us int64) string { return time.UnixMicro(us).UTC().Format("15:04:05.000") }

// session describes b as this sample shows it, with its role.
func (t *tracker) session(g *graph, b Backend) Session {
	s := sessionOf(b, g.backends[b])
	if p := g.prepared[b]; p != nil {
		s = preparedSession(b, p)
	}
	s.setRole(classify(g, b, t.rels, t.odoo))
	return s
}

// preparedSession describes a prepared transaction as a session: no
// backend, named by its gid.
func preparedSession(b Backend, p *recording.PreparedXact) Session {
	prepared := time.UnixMicro(p.Prepared).UTC()
	return Session{PID: 0, BackendStart: time.UnixMicro(b.Start).UTC(), ApplicationName: "(prepared transaction)",
		User: p.Owner, Database: p.Database, BackendType: "prepared transaction", State: "prepared",
		GID: p.GID, Transaction: p.Transaction, XactStart: &prepared}
}

func sessionOf(b Backend, a *recording.Activity) Session {
	s := Session{PID: b.PID, BackendStart: time.UnixMicro(b.Start).UTC()}
	if a == nil {
		if b.PID == 0 {
			s.ApplicationName = "(prepared transaction)"
			s.BackendType, s.State = "prepared transaction", "prepared"
		}
		return s
	}
	s.Database = a.DatName
	s.ApplicationName, s.User, s.ClientAddr = a.ApplicationName, a.UseName, a.ClientAddr
	s.BackendType, s.State, s.Query = a.BackendType, a.State, a.Query
	if a.XactStart != 0 {
		x := time.UnixMicro(a.XactStart).UTC()
		s.XactStart = &x
	}
	return s
}
