package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lockscope/lockscope/analyze"
)

// groupAbove: waiters sharing a blocker, a role and a wanted mode are drawn
// as one node with a count once there are more than this many, so that a
// queue of 300 sessions stays readable.
const groupAbove = 4

// dotString quotes s for DOT: backslashes (which would start Graphviz's own
// escapes such as \N or \l), quotes and line breaks are neutralised.
func dotString(s string) string { return dotStringN(s, 60) }

func dotStringN(s string, n int) string {
	s = oneLine(s, n)
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return s
}

// label joins lines into one quoted DOT label.
func label(lines ...string) string {
	for i, l := range lines {
		lines[i] = dotString(l)
	}
	return `"` + strings.Join(lines, `\n`) + `"`
}

func nodeID(pid int32) string { return fmt.Sprintf("pid%d", pid) }

var edgeStyle = map[string]string{
	analyze.EdgeHard:         `style=bold, color="#b00020"`,
	analyze.EdgeSoftObserved: `style=dashed, color="#444444"`,
	analyze.EdgeSoftInferred: `style=dotted, color="#888888"`,
}

// BlockingDOT draws the wait-for graph at the incident's peak: root
// blocker, then what waits for it, waiters grouped by role and wanted mode
// with counts; edges styled by kind (bold: hard, dashed: observed soft,
// dotted: inferred soft); the root blocker highlighted.
func BlockingDOT(inc analyze.Incident) string {
	edges := peakEdges(inc)
	// Who blocks someone at the peak stays a node of its own; leaves are
	// grouped.
	blocks := map[int32]bool{}
	for _, e := range edges {
		blocks[e.BlockerPID] = true
	}
	g := newBlockingGraph(inc)
	groups, keys := leafGroups(edges, blocks, g.sessions)

	g.header()
	g.blockerEdges(edges, blocks)
	g.leafEdges(groups, keys)
	g.b.WriteString("}\n")
	return g.b.String()
}

// peakEdges are the wait-for edges recorded at the incident's peak.
func peakEdges(inc analyze.Incident) []analyze.EdgeRecord {
	var edges []analyze.EdgeRecord
	for _, e := range inc.EdgeLog {
		if e.TS.Equal(inc.PeakAt) {
			edges = append(edges, e)
		}
	}
	return edges
}

// groupKey is what the waiters drawn as one group share: whom they wait
// for, their role, the mode they want and the kind of their edge.
type groupKey struct {
	blocker    int32
	role, mode string
	kind       string
}

// leafGroups groups the waiters that block nobody (the leaves) by
// groupKey; each group's pids are in the order of edges, the keys sorted by
// blocker, then role, mode and kind.
func leafGroups(edges []analyze.EdgeRecord, blocks map[int32]bool, sessions map[int32]analyze.Session) (map[groupKey][]int32, []groupKey) {
	groups := map[groupKey][]int32{}
	var keys []groupKey
	for _, e := range edges {
		if blocks[e.WaiterPID] {
			continue
		}
		w := sessions[e.WaiterPID]
		k := groupKey{e.BlockerPID, w.Role, w.Mode, e.Kind}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], e.WaiterPID)
	}
	slices.SortFunc(keys, func(x, y groupKey) int {
		if x.blocker != y.blocker {
			return int(x.blocker - y.blocker)
		}
		return strings.Compare(x.role+x.mode+x.kind, y.role+y.mode+y.kind)
	})
	return groups, keys
}

// blockingGraph writes one incident's blocking graph in DOT, each session
// node once.
type blockingGraph struct {
	inc      analyze.Incident
	sessions map[int32]analyze.Session
	roots    map[int32]analyze.RootBlocker
	drawn    map[int32]bool
	b        strings.Builder
}

func newBlockingGraph(inc analyze.Incident) *blockingGraph {
	g := &blockingGraph{inc: inc, sessions: map[int32]analyze.Session{}, roots: map[int32]analyze.RootBlocker{}, drawn: map[int32]bool{}}
	for _, w := range inc.Waiters {
		g.sessions[w.PID] = w
	}
	for _, r := range inc.RootBlockers {
		g.roots[r.PID] = r
		g.sessions[r.PID] = r.Session
	}
	return g
}

// header opens the graph: its title and the default node and edge styles.
func (g *blockingGraph) header() {
	inc := g.inc
	g.b.WriteString("digraph blocking {\n")
	fmt.Fprintf(&g.b, "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, labelloc=t, label=\"%s\"];\n",
		dotStringN(fmt.Sprintf("Incident %d at its peak, %s UTC: %d sessions waiting", inc.ID, inc.PeakAt.UTC().Format("15:04:05.000"), inc.PeakWaiters), 200))
	g.b.WriteString("  node [fontname=\"Helvetica\", fontsize=10, shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", margin=\"0.2,0.08\"];\n")
	g.b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9, dir=back];\n")
}

// node writes pid's node the first time it is asked for.
func (g *blockingGraph) node(pid int32) {
	if g.drawn[pid] {
		return
	}
	g.drawn[pid] = true
	lines, attrs := g.nodeLabel(pid)
	fmt.Fprintf(&g.b, "  %s [label=%s%s];\n", nodeID(pid), label(lines...), attrs)
}

// nodeLabel is a session's label lines and extra attributes: a prepared
// transaction or a root blocker highlighted, a waiter with what it wants,
// the DDL among them tinted.
func (g *blockingGraph) nodeLabel(pid int32) (lines []string, attrs string) {
	s := g.sessions[pid]
	lines = []string{fmt.Sprintf("pid %d", pid), s.ApplicationName, s.Role + " · " + s.State}
	r, root := g.roots[pid]
	switch {
	case root && r.GID != "":
		return []string{"prepared transaction " + r.GID, "owner " + r.User + " · database " + r.Database,
			fmt.Sprintf("ROOT BLOCKER · prepared %.1f s before", r.TransactionAge)}, `, fillcolor="#f8d7da", penwidth=2`
	case root:
		return append(lines, fmt.Sprintf("ROOT BLOCKER · xact %.1f s", r.TransactionAge)), `, fillcolor="#f8d7da", penwidth=2`
	case s.Mode != "":
		lines = append(lines, fmt.Sprintf("wants %s · waited %.1f s", s.Mode, s.WaitedFor))
		if g.inc.DDL != nil && g.inc.DDL.PID == pid {
			attrs = `, fillcolor="#fff3cd"`
		}
	}
	return lines, attrs
}

// blockerEdges draws the edges into sessions that themselves block
// someone, with both ends' nodes, in a fixed order (blocker, then waiter).
func (g *blockingGraph) blockerEdges(edges []analyze.EdgeRecord, blocks map[int32]bool) {
	edges = slices.Clone(edges)
	slices.SortFunc(edges, func(x, y analyze.EdgeRecord) int {
		if x.BlockerPID != y.BlockerPID {
			return int(x.BlockerPID - y.BlockerPID)
		}
		return int(x.WaiterPID - y.WaiterPID)
	})
	for _, e := range edges {
		if !blocks[e.WaiterPID] {
			continue
		}
		g.node(e.BlockerPID)
		g.node(e.WaiterPID)
		fmt.Fprintf(&g.b, "  %s -> %s [%s, tooltip=%s];\n", nodeID(e.BlockerPID), nodeID(e.WaiterPID), edgeStyle[e.Kind], label(e.Kind))
	}
}

// leafEdges draws each group of leaf waiters: a node and an edge each for
// up to groupAbove of them, else one counted node with how long the
// longest waited.
func (g *blockingGraph) leafEdges(groups map[groupKey][]int32, keys []groupKey) {
	for i, k := range keys {
		g.node(k.blocker)
		pids := groups[k]
		if len(pids) <= groupAbove {
			for _, pid := range pids {
				g.node(pid)
				fmt.Fprintf(&g.b, "  %s -> %s [%s];\n", nodeID(k.blocker), nodeID(pid), edgeStyle[k.kind])
			}
			continue
		}
		var longest float64
		for _, pid := range pids {
			longest = max(longest, g.sessions[pid].WaitedFor)
		}
		id := fmt.Sprintf("group%d", i+1)
		fmt.Fprintf(&g.b, "  %s [label=%s, shape=box3d];\n", id,
			label(fmt.Sprintf("%d × %s", len(pids), k.role), "wants "+k.mode, fmt.Sprintf("waited up to %.1f s", longest)))
		fmt.Fprintf(&g.b, "  %s -> %s [%s, label=%s];\n", nodeID(k.blocker), id, edgeStyle[k.kind], label(fmt.Sprint(len(pids))))
	}
}
