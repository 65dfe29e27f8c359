package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lockscope/lockscope/analyze"
)

// The timeline picture: a real time axis, one lane per root blocker, DDL,
// deadlock member and the waiting crowd, bars for holding and waiting,
// numbered markers for the events with their legend below. Positions are
// pinned (Graphviz's neato) so that x is proportional to time; the picture
// is about 11.5 inches (1,100 pixels) wide, readable on a slide.
const (
	tlLeft    = 2.6 // inches: the lane labels' column
	tlWidth   = 8.6 // inches: the time axis
	tlLane    = 0.55
	tlFont    = 12
	tlMaxLane = 6
)

type lane struct {
	label      string
	from, to   time.Time
	color      string
	barLabel   string
	openBefore bool // the bar starts before the picture (clipped)
}

// TimelineDOT draws the incident on a time axis (see the constants above).
func TimelineDOT(inc analyze.Incident) string {
	events := timeline(inc)
	end := inc.Start.Add(time.Duration(inc.Duration * float64(time.Second)))
	if inc.End != nil {
		end = *inc.End
	}
	// The span: the incident, the events, with a margin either side; a
	// transaction that began long before is clipped.
	t0, t1 := inc.Start, end
	for _, e := range events {
		if e.At.Before(t0) && inc.Start.Sub(e.At) < 5*time.Minute {
			t0 = e.At
		}
		if e.At.After(t1) {
			t1 = e.At
		}
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	pad := span / 20
	t0, t1 = t0.Add(-pad), t1.Add(pad)
	span = t1.Sub(t0)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(t0)) / float64(span)
		return tlLeft + math.Max(0, math.Min(1, f))*tlWidth
	}

	var lanes []lane
	for i, r := range inc.RootBlockers {
		if i == tlMaxLane-2 {
			break
		}
		from := r.FirstSeen
		if r.XactStart != nil {
			from = *r.XactStart
		}
		to := end
		if r.Gone != nil {
			to = *r.Gone
		}
		name := fmt.Sprintf("root blocker pid %d\n%s", r.PID, r.Role)
		if r.GID != "" {
			name = "prepared transaction\n" + r.GID
		}
		lanes = append(lanes, lane{label: name, from: from, to: to, color: "#c62828", barLabel: "holds " + lockWords(r.Locks), openBefore: from.Before(t0)})
	}
	if d := inc.Deadlock; d != nil {
		for i, m := range d.Members {
			if i == tlMaxLane-1 {
				break
			}
			lanes = append(lanes, lane{label: fmt.Sprintf("deadlock member pid %d\n%s", m.PID, m.ApplicationName), from: d.FirstSeen, to: d.LastSeen,
				color: "#f9a825", barLabel: "waits for " + m.WaitsFor})
		}
	}
	if d := inc.DDL; d != nil {
		l := lane{label: fmt.Sprintf("DDL pid %d\n%s", d.PID, d.ApplicationName), color: "#f9a825", to: end}
		switch {
		case d.Outcome == analyze.OutcomeHeld && d.FirstWait == nil:
			l.from, l.color, l.barLabel = inc.Start, "#c62828", "holds "+d.Mode+" on "+d.Relation
		case d.FirstWait != nil:
			l.from, l.barLabel = *d.FirstWait, "waits for "+d.Mode+" on "+d.Relation
			if d.Settled != nil {
				l.to = *d.Settled
			}
		default:
			l.from = inc.Start
		}
		lanes = append(lanes, l)
	}
	lanes = append(lanes, lane{label: "sessions waiting", from: inc.Start, to: end, color: "#1565c0",
		barLabel: fmt.Sprintf("%d at the peak (%s), %.1f waiter-seconds", inc.PeakWaiters, tplus(inc.Start, inc.PeakAt), inc.WaiterSeconds)})

	var b strings.Builder
	b.WriteString("digraph timeline {\n")
	fmt.Fprintf(&b, "  graph [layout=neato, splines=false, overlap=true, outputorder=edgesfirst, fontname=\"Helvetica\", fontsize=14, labelloc=t, label=\"%s\", pad=0.2];\n",
		dotStringN(fmt.Sprintf("Incident %d: %s, %s to %s UTC", inc.ID, inc.Kind, t0.UTC().Format("15:04:05"), t1.UTC().Format("15:04:05")), 200))
	fmt.Fprintf(&b, "  node [fontname=\"Helvetica\", fontsize=%d, shape=plaintext, margin=0, width=0, height=0];\n", tlFont)
	b.WriteString("  edge [dir=none, arrowhead=none];\n")
	n := 0
	point := func(xi, y float64) string {
		n++
		id := fmt.Sprintf("p%d", n)
		fmt.Fprintf(&b, "  %s [shape=point, style=invis, pos=\"%.3f,%.3f!\"];\n", id, xi, y)
		return id
	}
	text := func(s string, xi, y float64, size int, color string) {
		n++
		lines := strings.Split(s, "\n")
		for i := range lines {
			lines[i] = dotStringN(lines[i], 70)
		}
		fmt.Fprintf(&b, "  t%d [label=\"%s\", pos=\"%.3f,%.3f!\", fontsize=%d, fontcolor=\"%s\"];\n", n, strings.Join(lines, `\n`), xi, y, size, color)
	}
	// Lanes, top down.
	y := float64(len(lanes)+2) * tlLane
	for _, l := range lanes {
		text(l.label, tlLeft/2, y, tlFont, "#222222")
		x1, x2 := x(l.from), x(l.to)
		if x2-x1 < 0.04 {
			x2 = x1 + 0.04
		}
		a, c := point(x1, y), point(x2, y)
		fmt.Fprintf(&b, "  %s -> %s [penwidth=12, color=\"%s\"];\n", a, c, l.color)
		if l.openBefore {
			text("since "+l.from.UTC().Format("15:04:05"), x1+0.5, y+0.2, tlFont-2, "#555555")
		}
		text(l.barLabel, math.Min(x1+(x2-x1)/2, tlLeft+tlWidth-1.5), y-0.24, tlFont-2, "#333333")
		y -= tlLane
	}
	// Event markers, numbered, on their own row above the axis.
	mark := y
	// Markers closer than a marker's width stack downwards.
	var placed [][2]float64 // x, row
	rows := 1
	for i, e := range events {
		mx, row := x(e.At), 0
		for _, p := range placed {
			if math.Abs(p[0]-mx) < 0.24 && int(p[1]) >= row {
				row = int(p[1]) + 1
			}
		}
		placed = append(placed, [2]float64{mx, float64(row)})
		rows = max(rows, row+1)
		n++
		fmt.Fprintf(&b, "  m%d [shape=circle, style=filled, fillcolor=\"#37474f\", fontcolor=\"#ffffff\", fontsize=9, width=0.22, fixedsize=true, label=\"%d\", pos=\"%.3f,%.3f!\"];\n",
			n, i+1, mx, mark-0.24*float64(row))
	}
	// The axis with ticks at a round step.
	axis := mark - 0.24*float64(rows-1) - 0.4
	a, c := point(tlLeft, axis), point(tlLeft+tlWidth, axis)
	fmt.Fprintf(&b, "  %s -> %s [penwidth=1.2, color=\"#444444\"];\n", a, c)
	step := niceStep(span.Seconds() / 8)
	first := math.Ceil(t0.Sub(inc.Start).Seconds()/step) * step
	for s := first; inc.Start.Add(time.Duration(s * float64(time.Second))).Before(t1); s += step {
		at := inc.Start.Add(time.Duration(s * float64(time.Second)))
		p, q := point(x(at), axis), point(x(at), axis-0.08)
		fmt.Fprintf(&b, "  %s -> %s [penwidth=1, color=\"#444444\"];\n", p, q)
		v := roundTo(s, step)
		tick := fmt.Sprintf("%+gs", v)
		if math.Abs(v) < step/1e3 {
			tick = "0s"
		}
		text(tick, x(at), axis-0.25, tlFont-2, "#444444")
	}
	text("seconds from the queue's first sample ("+inc.Start.UTC().Format("15:04:05.000")+" UTC)", tlLeft+tlWidth/2, axis-0.55, tlFont-1, "#444444")
	// The legend: one left-aligned line per marker, in one block.
	var legend []string
	for i, e := range events {
		legend = append(legend, dotStringN(fmt.Sprintf("%d   %s UTC   %s   %s", i+1, e.At.UTC().Format("15:04:05.000"), tplus(inc.Start, e.At), e.What), 130)+`\l`)
	}
	ly := axis - 0.8 - 0.11*float64(len(events))
	fmt.Fprintf(&b, "  legend [label=\"%s\", pos=\"%.3f,%.3f!\", fontsize=%d];\n", strings.Join(legend, ""), (tlLeft+tlWidth)/2, ly, tlFont-1)
	b.WriteString("}\n")
	return b.String()
}

// lockWords names a root blocker's locks briefly.
func lockWords(ls []analyze.HeldLock) string {
	if len(ls) == 0 {
		return "the locks its waiters wanted"
	}
	var parts []string
	for i, l := range ls {
		if i == 2 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, strings.TrimSuffix(l.Mode, "Lock")+" on "+l.Target)
	}
	return strings.Join(parts, ", ")
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(s float64) float64 {
	if s <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(s)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= s {
			return m * p
		}
	}
	return 10 * p
}

func roundTo(v, step float64) float64 {
	return math.Round(v/step) * step
}
