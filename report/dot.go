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
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
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
	var edges []analyze.EdgeRecord
	for _, e := range inc.EdgeLog {
		if e.TS.Equal(inc.PeakAt) {
			edges = append(edges, e)
		}
	}
	sessions := map[int32]analyze.Session{}
	for _, w := range inc.Waiters {
		sessions[w.PID] = w
	}
	roots := map[int32]analyze.RootBlocker{}
	for _, r := range inc.RootBlockers {
		roots[r.PID] = r
		sessions[r.PID] = r.Session
	}
	// Who blocks someone at the peak stays a node of its own; leaves are
	// grouped.
	blocks := map[int32]bool{}
	for _, e := range edges {
		blocks[e.BlockerPID] = true
	}
	type groupKey struct {
		blocker    int32
		role, mode string
		kind       string
	}
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

	var b strings.Builder
	b.WriteString("digraph blocking {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, labelloc=t, label=\"%s\"];\n",
		dotStringN(fmt.Sprintf("Incident %d at its peak, %s UTC: %d sessions waiting", inc.ID, inc.PeakAt.UTC().Format("15:04:05.000"), inc.PeakWaiters), 200))
	b.WriteString("  node [fontname=\"Helvetica\", fontsize=10, shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", margin=\"0.2,0.08\"];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9, dir=back];\n")

	drawn := map[int32]bool{}
	node := func(pid int32) {
		if drawn[pid] {
			return
		}
		drawn[pid] = true
		s := sessions[pid]
		lines := []string{fmt.Sprintf("pid %d", pid), s.ApplicationName, s.Role + " · " + s.State}
		attrs := ""
		if r, ok := roots[pid]; ok && r.GID != "" {
			lines = []string{"prepared transaction " + r.GID, "owner " + r.User + " · database " + r.Database,
				fmt.Sprintf("ROOT BLOCKER · prepared %.1f s before", r.TransactionAge)}
			attrs = `, fillcolor="#f8d7da", penwidth=2`
		} else if ok {
			lines = append(lines, fmt.Sprintf("ROOT BLOCKER · xact %.1f s", r.TransactionAge))
			attrs = `, fillcolor="#f8d7da", penwidth=2`
		} else if s.Mode != "" {
			lines = append(lines, fmt.Sprintf("wants %s · waited %.1f s", s.Mode, s.WaitedFor))
			if inc.DDL != nil && inc.DDL.PID == pid {
				attrs = `, fillcolor="#fff3cd"`
			}
		}
		fmt.Fprintf(&b, "  %s [label=%s%s];\n", nodeID(pid), label(lines...), attrs)
	}
	// Nodes and edges between blockers, in a fixed order.
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
		node(e.BlockerPID)
		node(e.WaiterPID)
		fmt.Fprintf(&b, "  %s -> %s [%s, tooltip=%s];\n", nodeID(e.BlockerPID), nodeID(e.WaiterPID), edgeStyle[e.Kind], label(e.Kind))
	}
	slices.SortFunc(keys, func(x, y groupKey) int {
		if x.blocker != y.blocker {
			return int(x.blocker - y.blocker)
		}
		return strings.Compare(x.role+x.mode+x.kind, y.role+y.mode+y.kind)
	})
	for i, k := range keys {
		node(k.blocker)
		pids := groups[k]
		if len(pids) <= groupAbove {
			for _, pid := range pids {
				node(pid)
				fmt.Fprintf(&b, "  %s -> %s [%s];\n", nodeID(k.blocker), nodeID(pid), edgeStyle[k.kind])
			}
			continue
		}
		var longest float64
		for _, pid := range pids {
			longest = max(longest, sessions[pid].WaitedFor)
		}
		id := fmt.Sprintf("group%d", i+1)
		fmt.Fprintf(&b, "  %s [label=%s, shape=box3d];\n", id,
			label(fmt.Sprintf("%d × %s", len(pids), k.role), "wants "+k.mode, fmt.Sprintf("waited up to %.1f s", longest)))
		fmt.Fprintf(&b, "  %s -> %s [%s, label=%s];\n", nodeID(k.blocker), id, edgeStyle[k.kind], label(fmt.Sprint(len(pids))))
	}
	b.WriteString("}\n")
	return b.String()
}
