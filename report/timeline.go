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
	label    string
	from, to time.Time
	color    string
	barLabel string
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
	span := max(t1.Sub(t0), time.Second/10)
	pad := span / 20
	d := &tlDrawing{t0: t0.Add(-pad), t1: t1.Add(pad)}
	d.b.WriteString("digraph timeline {\n")
	fmt.Fprintf(&d.b, "  graph [layout=neato, splines=false, overlap=true, outputorder=edgesfirst, fontname=\"Helvetica\", fontsize=14, labelloc=t, label=\"%s\", pad=0.2];\n",
		dotStringN(fmt.Sprintf("Incident %d: %s, %s to %s UTC", inc.ID, inc.Kind, d.t0.UTC().Format("15:04:05"), d.t1.UTC().Format("15:04:05")), 200))
	fmt.Fprintf(&d.b, "  node [fontname=\"Helvetica\", fontsize=%d, shape=plaintext, margin=0, width=0, height=0];\n", tlFont)
	d.b.WriteString("  edge [dir=none, arrowhead=none];\n")
	lanes := timelineLanes(inc, end)
	y := d.lanes(lanes, float64(len(lanes)+2)*tlLane)
	axis := d.markers(events, y)
	d.axis(inc.Start, axis)
	d.legend(inc.Start, events, axis)
	d.b.WriteString("}\n")
	return d.b.String()
}

// timelineLanes are the picture's rows, top down: root blockers, deadlock
// members, the DDL, the waiting sessions.
func timelineLanes(inc analyze.Incident, end time.Time) []lane {
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
		lanes = append(lanes, lane{label: name, from: from, to: to, color: "#c62828", barLabel: "holds " + lockWords(r.Locks)})
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
	return append(lanes, lane{label: "sessions waiting", from: inc.Start, to: end, color: "#1565c0",
		barLabel: fmt.Sprintf("%d at the peak (%s), %.1f waiter-seconds", inc.PeakWaiters, tplus(inc.Start, inc.PeakAt), inc.WaiterSeconds)})
}

// tlDrawing writes the timeline's DOT, with x proportional to time
// between t0 and t1.
type tlDrawing struct {
	b      strings.Builder
	t0, t1 time.Time
	n      int
}

func (d *tlDrawing) x(t time.Time) float64 {
	f := float64(t.Sub(d.t0)) / float64(d.t1.Sub(d.t0))
	return tlLeft + math.Max(0, math.Min(1, f))*tlWidth
}

// point is an invisible pinned node, an end of a bar or a tick.
func (d *tlDrawing) point(x, y float64) string {
	d.n++
	id := fmt.Sprintf("p%d", d.n)
	fmt.Fprintf(&d.b, "  %s [shape=point, style=invis, pos=\"%.3f,%.3f!\"];\n", id, x, y)
	return id
}

func (d *tlDrawing) line(x1, y1, x2, y2, width float64, color string) {
	a, c := d.point(x1, y1), d.point(x2, y2)
	fmt.Fprintf(&d.b, "  %s -> %s [penwidth=%g, color=\"%s\"];\n", a, c, width, color)
}

func (d *tlDrawing) text(s string, x, y float64, size int, color string) {
	d.n++
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = dotStringN(lines[i], 70)
	}
	fmt.Fprintf(&d.b, "  t%d [label=\"%s\", pos=\"%.3f,%.3f!\", fontsize=%d, fontcolor=\"%s\"];\n", d.n, strings.Join(lines, `\n`), x, y, size, color)
}

// lanes draws each lane's label and bar from y down; it returns the y
// below the last.
func (d *tlDrawing) lanes(lanes []lane, y float64) float64 {
	for _, l := range lanes {
		d.text(l.label, tlLeft/2, y, tlFont, "#222222")
		x1, x2 := d.x(l.from), d.x(l.to)
		if x2-x1 < 0.04 {
			x2 = x1 + 0.04
		}
		d.line(x1, y, x2, y, 12, l.color)
		if l.from.Before(d.t0) {
			d.text("since "+l.from.UTC().Format("15:04:05"), x1+0.5, y+0.2, tlFont-2, "#555555")
		}
		d.text(l.barLabel, math.Min(x1+(x2-x1)/2, tlLeft+tlWidth-1.5), y-0.24, tlFont-2, "#333333")
		y -= tlLane
	}
	return y
}

// markers places the numbered event markers on their row, stacking those
// closer than a marker's width; it returns the axis' y below them.
func (d *tlDrawing) markers(events []Event, mark float64) float64 {
	var placed [][2]float64 // x, row
	rows := 1
	for i, e := range events {
		mx, row := d.x(e.At), 0
		for _, p := range placed {
			if math.Abs(p[0]-mx) < 0.24 && int(p[1]) >= row {
				row = int(p[1]) + 1
			}
		}
		placed = append(placed, [2]float64{mx, float64(row)})
		rows = max(rows, row+1)
		d.n++
		fmt.Fprintf(&d.b, "  m%d [shape=circle, style=filled, fillcolor=\"#37474f\", fontcolor=\"#ffffff\", fontsize=9, width=0.22, fixedsize=true, label=\"%d\", pos=\"%.3f,%.3f!\"];\n",
			d.n, i+1, mx, mark-0.24*float64(row))
	}
	return mark - 0.24*float64(rows-1) - 0.4
}

// axis draws the time axis with ticks at a round step, in seconds from
// the incident's start.
func (d *tlDrawing) axis(start time.Time, y float64) {
	d.line(tlLeft, y, tlLeft+tlWidth, y, 1.2, "#444444")
	span := d.t1.Sub(d.t0)
	step := niceStep(span.Seconds() / 8)
	first := math.Ceil(d.t0.Sub(start).Seconds()/step) * step
	for s := first; start.Add(time.Duration(s * float64(time.Second))).Before(d.t1); s += step {
		at := start.Add(time.Duration(s * float64(time.Second)))
		d.line(d.x(at), y, d.x(at), y-0.08, 1, "#444444")
		v := roundTo(s, step)
		tick := fmt.Sprintf("%+gs", v)
		if math.Abs(v) < step/1e3 {
			tick = "0s"
		}
		d.text(tick, d.x(at), y-0.25, tlFont-2, "#444444")
	}
	d.text("seconds from the queue's first sample ("+start.UTC().Format("15:04:05.000")+" UTC)", tlLeft+tlWidth/2, y-0.55, tlFont-1, "#444444")
}

// legend lists the markers, one left-aligned line each, below the axis.
func (d *tlDrawing) legend(start time.Time, events []Event, axis float64) {
	var lines []string
	for i, e := range events {
		lines = append(lines, dotStringN(fmt.Sprintf("%d   %s UTC   %s   %s", i+1, e.At.UTC().Format("15:04:05.000"), tplus(start, e.At), e.What), 130)+`\l`)
	}
	ly := axis - 0.8 - 0.11*float64(len(events))
	fmt.Fprintf(&d.b, "  legend [label=\"%s\", pos=\"%.3f,%.3f!\", fontsize=%d];\n", strings.Join(lines, ""), (tlLeft+tlWidth)/2, ly, tlFont-1)
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
