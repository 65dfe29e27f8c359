package analyze

import (
	"slices"
	"strconv"
	"strings"

	"github.com/lockscope/lockscope/capture/recording"
)

// Backend identifies a server backend: pids are reused, so a backend is a
// pid and its backend_start. A prepared transaction, which holds its locks
// with no backend, is {PID: 0, Start: its prepared time} (Start 0 when the
// recording has no pg_prepared_xacts row for it).
type Backend struct {
	PID   int32 `json:"pid"`
	Start int64 `json:"backend_start"`
}

// Edge kinds.
const (
	// EdgeHard: the blocker holds a lock that conflicts with the waiter's
	// request — exact, from pg_locks.
	EdgeHard = "hard"
	// EdgeSoftObserved: pg_blocking_pids named the blocker, which holds
	// nothing conflicting: it waits ahead in the queue.
	EdgeSoftObserved = "soft-observed"
	// EdgeSoftInferred: the blocker waits ahead (earlier waitstart) for a
	// conflicting mode; pg_locks cannot show queue order, so this is an
	// inference that pg_blocking_pids did not confirm.
	EdgeSoftInferred = "soft-inferred"
)

// WaitEdge is one edge of a tick's wait-for graph: Waiter waits for Blocker.
type WaitEdge struct {
	Waiter, Blocker Backend
	Kind            string
	// Observed: pg_blocking_pids(waiter) listed the blocker.
	Observed bool
}

// wait is a backend's ungranted lock request.
type wait struct {
	backend   Backend
	tag       tag
	mode      string
	waitStart int64
}

// snapshot is one full sample, assembled from the recording's tables.
type snapshot struct {
	tick     recording.Tick
	activity []recording.Activity
	locks    []recording.Lock
	edges    []recording.Edge
	odoo     []recording.OdooModule
	servers  []recording.PgBouncerServer
	// prepared are the prepared transactions (pg_prepared_xacts).
	prepared []recording.PreparedXact
	// recorderApp is the recorder's application_name (from the segment's
	// metadata): its session is left out.
	recorderApp string
}

// graph is a tick's wait-for graph and the facts it was built from.
type graph struct {
	ts       int64
	sampleID int64
	// backends holds the activity row of each backend but the recorder's.
	backends map[Backend]*recording.Activity
	byPID    map[int32]Backend
	waits    map[Backend]*wait
	edges    []WaitEdge
	// held lists each backend's granted locks.
	held map[Backend][]*recording.Lock
	// pooled holds the pids PgBouncer's SHOW SERVERS links to a pool.
	pooled map[int32]bool
	// rev maps a blocker to its direct waiters (built by behind).
	rev map[Backend][]Backend
	// prepared holds the pg_prepared_xacts row of each prepared
	// transaction that holds locks in this sample.
	prepared map[Backend]*recording.PreparedXact
}

// preparedXIDs maps the virtualtransaction of each prepared transaction's
// lock rows (pid NULL) to its transaction id: the xid of its own granted
// ExclusiveLock on a transactionid, or the <xid> of a -1/<xid>
// virtualtransaction (the form some versions show).
func preparedXIDs(locks []recording.Lock) map[string]int64 {
	var m map[string]int64
	for i := range locks {
		l := &locks[i]
		if l.PID != 0 || !l.Granted {
			continue
		}
		if m == nil {
			m = map[string]int64{}
		}
		if l.LockType == "transactionid" && l.Mode == "ExclusiveLock" {
			m[l.VirtualTransaction] = l.TransactionID
		} else if _, ok := m[l.VirtualTransaction]; !ok && strings.HasPrefix(l.VirtualTransaction, "-1/") {
			if xid, err := strconv.ParseInt(l.VirtualTransaction[3:], 10, 64); err == nil {
				m[l.VirtualTransaction] = xid
			}
		}
	}
	return m
}

// buildGraph builds the wait-for graph of one full sample. quiet allows a
// sample without lock waits to skip its indexes (no incident is open to
// need them): most samples of a healthy server have none.
func buildGraph(s *snapshot, quiet bool) *graph {
	if quiet && len(s.edges) == 0 && !slices.ContainsFunc(s.locks, func(l recording.Lock) bool { return !l.Granted }) {
		return &graph{ts: s.tick.TS, sampleID: s.tick.SampleID, waits: map[Backend]*wait{}}
	}
	gb := newGraphBuilder(s)
	gb.indexLocks()
	gb.edgesFromLocks()
	gb.edgesFromBlockingPIDs()
	g := gb.g
	slices.SortFunc(g.edges, func(a, b WaitEdge) int {
		if c := comparePID(a.Waiter, b.Waiter); c != 0 {
			return c
		}
		return comparePID(a.Blocker, b.Blocker)
	})
	return g
}

// graphBuilder holds what building one sample's graph needs between its
// steps: who is whose parallel leader, the prepared transactions, and
// each lock tag's holders and queue.
type graphBuilder struct {
	g        *graph
	s        *snapshot
	recorder int32
	leader   map[int32]int32
	byXID    map[int64]*recording.PreparedXact
	xids     map[string]int64
	holders  map[tag][]*recording.Lock
	owner    map[*recording.Lock]Backend
	queued   map[tag][]*wait
	index    map[[2]Backend]int
}

// newGraphBuilder indexes the sample's backends, leaving out the
// recorder's own session.
func newGraphBuilder(s *snapshot) *graphBuilder {
	gb := &graphBuilder{s: s, recorder: s.tick.CapturePID, leader: map[int32]int32{},
		byXID: map[int64]*recording.PreparedXact{}, xids: preparedXIDs(s.locks),
		holders: map[tag][]*recording.Lock{}, owner: map[*recording.Lock]Backend{}, queued: map[tag][]*wait{},
		index: map[[2]Backend]int{}}
	gb.g = &graph{
		ts: s.tick.TS, sampleID: s.tick.SampleID,
		backends: make(map[Backend]*recording.Activity, len(s.activity)),
		byPID:    make(map[int32]Backend, len(s.activity)),
		waits:    map[Backend]*wait{},
		held:     map[Backend][]*recording.Lock{},
		pooled:   map[int32]bool{},
	}
	for _, sv := range s.servers {
		if sv.RemotePID != 0 {
			gb.g.pooled[sv.RemotePID] = true
		}
	}
	for i := range s.activity {
		a := &s.activity[i]
		if a.PID == gb.recorder || (s.recorderApp != "" && a.ApplicationName == s.recorderApp) {
			continue
		}
		b := Backend{a.PID, a.BackendStart}
		gb.g.backends[b] = a
		gb.g.byPID[a.PID] = b
		if a.LeaderPID != 0 && a.LeaderPID != a.PID {
			gb.leader[a.PID] = a.LeaderPID
		}
	}
	// Prepared transactions are named by their pg_prepared_xacts row.
	for i := range s.prepared {
		gb.byXID[s.prepared[i].Transaction] = &s.prepared[i]
	}
	return gb
}

// backendOf is the backend a pid stands for: a parallel worker's locks
// count as its leader's, as pg_blocking_pids reports them; false for the
// recorder.
func (gb *graphBuilder) backendOf(pid int32) (Backend, bool) {
	if pid == 0 {
		return Backend{}, true // a prepared transaction
	}
	if l, ok := gb.leader[pid]; ok {
		pid = l
	}
	if pid == gb.recorder {
		return Backend{}, false
	}
	b, ok := gb.g.byPID[pid]
	if !ok {
		b = Backend{PID: pid} // ended between the two scans
	}
	return b, true
}

// lockOwner is the backend, or the prepared transaction, a lock row
// belongs to.
func (gb *graphBuilder) lockOwner(l *recording.Lock) (Backend, bool) {
	if l.PID != 0 {
		return gb.backendOf(l.PID)
	}
	b := Backend{}
	if p := gb.byXID[gb.xids[l.VirtualTransaction]]; p != nil {
		b.Start = p.Prepared
		if gb.g.prepared == nil {
			gb.g.prepared = map[Backend]*recording.PreparedXact{}
		}
		gb.g.prepared[b] = p
	}
	return b, true
}

// indexLocks sorts the lock rows into each backend's granted locks and
// each tag's holders and waiters.
func (gb *graphBuilder) indexLocks() {
	for i := range gb.s.locks {
		l := &gb.s.locks[i]
		b, ok := gb.lockOwner(l)
		if !ok {
			continue
		}
		t := tagOf(l)
		if l.Granted {
			gb.holders[t] = append(gb.holders[t], l)
			gb.owner[l] = b
			gb.g.held[b] = append(gb.g.held[b], l)
			continue
		}
		if l.PID == 0 {
			continue
		}
		w := &wait{backend: b, tag: t, mode: l.Mode, waitStart: l.WaitStart}
		gb.g.waits[b] = w
		gb.queued[t] = append(gb.queued[t], w)
	}
}

// add adds an edge, or marks an existing one observed.
func (gb *graphBuilder) add(e WaitEdge) {
	k := [2]Backend{e.Waiter, e.Blocker}
	if i, ok := gb.index[k]; ok {
		gb.g.edges[i].Observed = gb.g.edges[i].Observed || e.Observed
		return
	}
	gb.index[k] = len(gb.g.edges)
	gb.g.edges = append(gb.g.edges, e)
}

// edgesFromLocks adds the hard edges (a conflicting granted lock) and
// the inferred soft ones (an earlier conflicting waiter on the same tag).
func (gb *graphBuilder) edgesFromLocks() {
	for _, w := range sortedWaits(gb.g.waits) {
		for _, h := range gb.holders[w.tag] {
			hb := gb.owner[h]
			if hb != w.backend && Conflicts(w.mode, h.Mode) {
				gb.add(WaitEdge{Waiter: w.backend, Blocker: hb, Kind: EdgeHard})
			}
		}
		for _, v := range gb.queued[w.tag] {
			if v.backend != w.backend && v.waitStart != 0 && w.waitStart != 0 && v.waitStart < w.waitStart && Conflicts(w.mode, v.mode) {
				gb.add(WaitEdge{Waiter: w.backend, Blocker: v.backend, Kind: EdgeSoftInferred})
			}
		}
	}
}

// edgesFromBlockingPIDs confirms edges pg_blocking_pids reported, and
// adds the soft ones pg_locks could not show.
func (gb *graphBuilder) edgesFromBlockingPIDs() {
	g := gb.g
	for i := range gb.s.edges {
		e := &gb.s.edges[i]
		wb, ok := gb.backendOf(e.PID)
		if !ok {
			continue
		}
		bb, ok := gb.backendOf(e.BlockingPID)
		if !ok || wb == bb {
			continue
		}
		if e.BlockingPID == 0 {
			// pg_blocking_pids reports every prepared transaction as pid
			// 0: confirm the hard edges to prepared transactions, or name
			// the only one there is.
			confirmed := false
			for j := range g.edges {
				if g.edges[j].Waiter == wb && g.edges[j].Blocker.PID == 0 {
					g.edges[j].Observed, confirmed = true, true
				}
			}
			if confirmed {
				continue
			}
			if len(g.prepared) == 1 {
				for p := range g.prepared {
					bb = p
				}
			}
		}
		if j, ok := gb.index[[2]Backend{wb, bb}]; ok {
			g.edges[j].Observed = true
			if g.edges[j].Kind == EdgeSoftInferred {
				g.edges[j].Kind = EdgeSoftObserved
			}
			continue
		}
		gb.add(WaitEdge{Waiter: wb, Blocker: bb, Kind: EdgeSoftObserved, Observed: true})
	}
}

func comparePID(a, b Backend) int {
	if a.PID != b.PID {
		return int(a.PID) - int(b.PID)
	}
	switch {
	case a.Start < b.Start:
		return -1
	case a.Start > b.Start:
		return 1
	}
	return 0
}

func sortedWaits(m map[Backend]*wait) []*wait {
	out := make([]*wait, 0, len(m))
	for _, w := range m {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *wait) int { return comparePID(a.backend, b.backend) })
	return out
}

// waiting reports whether b waits on a lock in this tick.
func (g *graph) waiting(b Backend) bool { _, ok := g.waits[b]; return ok }

// roots returns the backends that block someone and wait for nothing.
func (g *graph) roots() []Backend {
	seen := map[Backend]bool{}
	var out []Backend
	for _, e := range g.edges {
		if !g.waiting(e.Blocker) && !seen[e.Blocker] {
			seen[e.Blocker] = true
			out = append(out, e.Blocker)
		}
	}
	slices.SortFunc(out, comparePID)
	return out
}

// behind returns the waiters that transitively wait for b.
func (g *graph) behind(b Backend) []Backend {
	if g.rev == nil { // built once per graph: behind is asked for every root and DDL
		g.rev = map[Backend][]Backend{}
		for _, e := range g.edges {
			g.rev[e.Blocker] = append(g.rev[e.Blocker], e.Waiter)
		}
	}
	rev := g.rev
	seen := map[Backend]bool{b: true}
	queue := []Backend{b}
	var out []Backend
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, w := range rev[x] {
			if !seen[w] {
				seen[w] = true
				out = append(out, w)
				queue = append(queue, w)
			}
		}
	}
	slices.SortFunc(out, comparePID)
	return out
}

// components splits the graph's backends into weakly connected parts; each
// part with a waiter is a separate lock queue (or a set that one graph
// joins).
func (g *graph) components() [][]Backend {
	parent := map[Backend]Backend{}
	var find func(Backend) Backend
	find = func(x Backend) Backend {
		p, ok := parent[x]
		if !ok || p == x {
			parent[x] = x
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	for b := range g.waits {
		find(b)
	}
	for _, e := range g.edges {
		a, b := find(e.Waiter), find(e.Blocker)
		if a != b {
			parent[a] = b
		}
	}
	groups := map[Backend][]Backend{}
	for x := range parent {
		r := find(x)
		groups[r] = append(groups[r], x)
	}
	var out [][]Backend
	for _, grp := range groups {
		slices.SortFunc(grp, comparePID)
		out = append(out, grp)
	}
	slices.SortFunc(out, func(a, b []Backend) int { return comparePID(a[0], b[0]) })
	return out
}
