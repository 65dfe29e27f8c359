package report

import (
	"bytes"
	"fmt"
	"image/color"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lockscope/lockscope/analyze"
)

// QueueChart is the incident's slide picture, over its own time range:
// see Chart.
func QueueChart(inc analyze.Incident) ([]byte, error) {
	from, to := chartRange(inc)
	return Chart(inc, from, to)
}

// chartRange runs from before the incident (its blocker's transaction
// start, when within ten minutes) to after its end, with a margin.
func chartRange(inc analyze.Incident) (time.Time, time.Time) {
	from, to := inc.Start, inc.Start.Add(time.Duration(max(inc.Duration, 1)*float64(time.Second)))
	if inc.End != nil {
		to = *inc.End
	}
	for _, r := range inc.RootBlockers {
		if r.XactStart != nil && r.XactStart.Before(from) && inc.Start.Sub(*r.XactStart) < 10*time.Minute {
			from = *r.XactStart
		}
	}
	if d := inc.DDL; d != nil && d.XactStart != nil && d.XactStart.Before(from) && inc.Start.Sub(*d.XactStart) < 10*time.Minute {
		from = *d.XactStart
	}
	pad := max(to.Sub(from)/10, time.Second)
	return from.Add(-pad), to.Add(pad)
}

// chartRanges gives each incident its time range, shared by incidents
// that overlap in time so that they can be read side by side.
func chartRanges(incs []analyze.Incident) [][2]time.Time {
	out := make([][2]time.Time, len(incs))
	for i, inc := range incs {
		f, t := chartRange(inc)
		out[i] = [2]time.Time{f, t}
	}
	for changed := true; changed; {
		changed = false
		for i := range out {
			for j := range out {
				if i == j || out[i][1].Before(out[j][0]) || out[j][1].Before(out[i][0]) {
					continue
				}
				f, t := minTime(out[i][0], out[j][0]), maxTime(out[i][1], out[j][1])
				if !f.Equal(out[i][0]) || !t.Equal(out[i][1]) {
					out[i], changed = [2]time.Time{f, t}, true
				}
			}
		}
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Chart plots the sessions waiting over wall-clock time from `from` to
// `to`, stacked by application and role, with markers for the root
// blocker's transaction start, the DDL's first wait, each operator
// statement seen and the end; its title is the incident's chain in one
// line. Between queues (lock_timeout retries) the depth is zero. It
// returns SVG.
func Chart(inc analyze.Incident, from, to time.Time) ([]byte, error) {
	p := plot.New()
	p.Title.Text = chain(inc, func(s string) string { return s })
	p.Title.TextStyle.Font.Size = font.Length(10)
	p.X.Label.Text = "UTC, " + inc.Start.UTC().Format("2006-01-02")
	p.X.Tick.Marker = plot.TimeTicks{Format: "15:04:05"}
	p.Y.Label.Text = "sessions waiting"
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = font.Length(8)
	// The same sans-serif face as the Graphviz pictures.
	for _, f := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font, &p.Y.Label.TextStyle.Font,
		&p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		f.Variant = "Sans"
	}
	x := func(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
	p.X.Min, p.X.Max = x(from), x(to)
	p.Y.Min = 0

	// Each application's waiting as a step function: a sample stands for
	// its Seconds, then nobody waits until the next sample says so.
	totals := map[string]float64{}
	for _, w := range inc.Waiting {
		for k, n := range w.ByApplication {
			totals[k] += float64(n) * max(w.Seconds, 0.001)
		}
	}
	keys := make([]string, 0, len(totals))
	for k := range totals {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if totals[a] != totals[b] {
			if totals[a] > totals[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	const most = 6
	group := func(k string) string {
		if i := slices.Index(keys, k); i >= most-1 && len(keys) > most {
			return "other applications"
		}
		return k
	}
	var layers []string
	for _, k := range keys {
		if g := group(k); !slices.Contains(layers, g) {
			layers = append(layers, g)
		}
	}
	// Cumulative step points: layer i is the sum of layers 0..i.
	cum := make([]plotter.XYs, len(layers))
	addStep := func(at float64, vals []float64) {
		sum := 0.0
		for i := range layers {
			sum += vals[i]
			cum[i] = append(cum[i], plotter.XY{X: at, Y: sum})
		}
	}
	zero := make([]float64, len(layers))
	addStep(x(from), zero)
	maxY := 1.0
	for i, w := range inc.Waiting {
		vals := make([]float64, len(layers))
		for k, n := range w.ByApplication {
			vals[slices.Index(layers, group(k))] += float64(n)
		}
		addStep(x(w.TS), vals)
		maxY = max(maxY, float64(w.Waiters))
		end := w.TS.Add(time.Duration(w.Seconds * float64(time.Second)))
		if i+1 < len(inc.Waiting) && inc.Waiting[i+1].TS.Sub(end) > 50*time.Millisecond {
			addStep(x(end), zero) // a gap: no samples, drawn as nobody known waiting
		}
	}
	addStep(x(to), zero)
	for i := len(layers) - 1; i >= 0; i-- {
		l, err := plotter.NewLine(cum[i])
		if err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		c := palette[i%len(palette)]
		l.StepStyle = plotter.PostStep
		l.Color, l.FillColor = c, fade(c)
		l.Width = vg.Points(1)
		p.Add(l)
	}
	for i, k := range layers {
		l, _ := plotter.NewLine(plotter.XYs{{X: x(from), Y: 0}})
		l.Color, l.Width = palette[i%len(palette)], vg.Points(6)
		p.Legend.Add(k, l)
	}

	// Markers.
	type marker struct {
		at   time.Time
		name string
		c    color.Color
	}
	var marks []marker
	for _, r := range inc.RootBlockers {
		if r.XactStart != nil && !r.XactStart.Before(from) {
			what := r.Role + "'s transaction begins"
			if r.PID == 0 {
				what = "the transaction is prepared"
			}
			marks = append(marks, marker{*r.XactStart, what + " " + r.XactStart.UTC().Format("15:04:05.0"), color.RGBA{R: 120, G: 120, B: 120, A: 255}})
		}
	}
	if d := inc.DDL; d != nil && d.FirstWait != nil {
		marks = append(marks, marker{*d.FirstWait, fmt.Sprintf("%s first waits %s", stmtHead(d), d.FirstWait.UTC().Format("15:04:05.0")), color.RGBA{R: 230, G: 120, A: 255}})
	}
	for _, op := range inc.Operator {
		marks = append(marks, marker{op.At, fmt.Sprintf("%s %s", oneLine(op.Query, 48), op.At.UTC().Format("15:04:05.0")), color.RGBA{R: 200, A: 255}})
	}
	if d := inc.DDL; d != nil && d.Settled != nil && d.Attempts > 1 {
		marks = append(marks, marker{*d.Settled, fmt.Sprintf("attempt %d of %d: %s %s", d.Attempts, d.Attempts, analyze.OutcomeWords(d.Outcome), d.Settled.UTC().Format("15:04:05.0")), color.RGBA{R: 90, G: 60, B: 160, A: 255}})
	}
	if inc.End != nil {
		what := "queue drained"
		if inc.EndedBy != "" {
			what += " (ended by the " + inc.EndedBy + " side)"
		}
		marks = append(marks, marker{*inc.End, what + " " + inc.End.UTC().Format("15:04:05.0"), color.RGBA{G: 140, B: 60, A: 255}})
	}
	for _, m := range marks {
		l, err := plotter.NewLine(plotter.XYs{{X: x(m.at), Y: 0}, {X: x(m.at), Y: maxY * 1.05}})
		if err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		l.Color, l.Width, l.Dashes = m.c, vg.Points(1.2), []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(m.name, l)
	}
	// Head room for the legend above the stacks.
	p.Y.Max = maxY * (1.15 + 0.13*float64(len(layers)+len(marks)))
	p.Add(plotter.NewGrid())
	w, err := p.WriterTo(20*vg.Centimeter, 10*vg.Centimeter, "svg")
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	return buf.Bytes(), nil
}

// fade is c lightened for an area fill.
func fade(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(v uint32) uint8 { return uint8((v>>8)/2 + 128) }
	return color.RGBA{R: mix(r), G: mix(g), B: mix(b), A: 255}
}

var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255},
	color.RGBA{R: 140, G: 86, B: 75, A: 255},
	color.RGBA{R: 127, G: 127, B: 127, A: 255},
}
