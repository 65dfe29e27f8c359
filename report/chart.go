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
	p := newChartPlot(inc, from, to)
	layers, group := applicationLayers(inc.Waiting)
	stacks, maxY := stackedSteps(inc.Waiting, layers, group, from, to)
	if err := addStacks(p, layers, stacks, from); err != nil {
		return nil, err
	}
	marks := chartMarkers(inc, from)
	if err := addMarkers(p, marks, maxY); err != nil {
		return nil, err
	}
	// Head room for the legend above the stacks.
	p.Y.Max = maxY * (1.15 + 0.13*float64(len(layers)+len(marks)))
	p.Add(plotter.NewGrid())
	return plotSVG(p)
}

// chartX is a moment's position on the chart's time axis: Unix seconds.
func chartX(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// newChartPlot is the empty chart: the incident's chain as its title, a
// time axis from `from` to `to`, a count axis from zero, the legend at the
// top left, all in the Graphviz pictures' sans-serif face.
func newChartPlot(inc analyze.Incident, from, to time.Time) *plot.Plot {
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
	p.X.Min, p.X.Max = chartX(from), chartX(to)
	p.Y.Min = 0
	return p
}

// chartLayers is how many stacked layers the chart draws at the most: the
// applications with the fewest waiter-seconds beyond it share one.
const chartLayers = 6

// applicationLayers orders the applications that waited by their
// waiter-seconds, most first (then by name), and folds all but the first
// chartLayers-1 into "other applications" when there are more than
// chartLayers. group maps an application to its layer.
func applicationLayers(waiting []analyze.WaitingPoint) (layers []string, group func(string) string) {
	totals := map[string]float64{}
	for _, w := range waiting {
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
	group = func(k string) string {
		if i := slices.Index(keys, k); i >= chartLayers-1 && len(keys) > chartLayers {
			return "other applications"
		}
		return k
	}
	for _, k := range keys {
		if g := group(k); !slices.Contains(layers, g) {
			layers = append(layers, g)
		}
	}
	return layers, group
}

// stackedSteps is each layer's waiting as a step function, stacked: layer
// i's points are the sum of layers 0..i. A sample stands for its Seconds,
// then nobody waits until the next sample says so. maxY is the most
// sessions waiting at once (at least 1).
func stackedSteps(waiting []analyze.WaitingPoint, layers []string, group func(string) string, from, to time.Time) (stacks []plotter.XYs, maxY float64) {
	stacks = make([]plotter.XYs, len(layers))
	addStep := func(at time.Time, vals []float64) {
		sum := 0.0
		for i := range layers {
			sum += vals[i]
			stacks[i] = append(stacks[i], plotter.XY{X: chartX(at), Y: sum})
		}
	}
	zero := make([]float64, len(layers))
	addStep(from, zero)
	maxY = 1.0
	for i, w := range waiting {
		vals := make([]float64, len(layers))
		for k, n := range w.ByApplication {
			vals[slices.Index(layers, group(k))] += float64(n)
		}
		addStep(w.TS, vals)
		maxY = max(maxY, float64(w.Waiters))
		end := w.TS.Add(time.Duration(w.Seconds * float64(time.Second)))
		if i+1 < len(waiting) && waiting[i+1].TS.Sub(end) > 50*time.Millisecond {
			addStep(end, zero) // a gap: no samples, drawn as nobody known waiting
		}
	}
	addStep(to, zero)
	return stacks, maxY
}

// addStacks draws the stacked layers as filled steps, the top one first so
// that each lower layer is painted over it, and names them in the legend.
func addStacks(p *plot.Plot, layers []string, stacks []plotter.XYs, from time.Time) error {
	for i := len(layers) - 1; i >= 0; i-- {
		l, err := plotter.NewLine(stacks[i])
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		c := palette[i%len(palette)]
		l.StepStyle = plotter.PostStep
		l.Color, l.FillColor = c, fade(c)
		l.Width = vg.Points(1)
		p.Add(l)
	}
	for i, k := range layers {
		l, _ := plotter.NewLine(plotter.XYs{{X: chartX(from), Y: 0}})
		l.Color, l.Width = palette[i%len(palette)], vg.Points(6)
		p.Legend.Add(k, l)
	}
	return nil
}

// marker is a moment the chart marks with a dashed vertical line and a
// legend entry.
type marker struct {
	at   time.Time
	name string
	c    color.Color
}

// chartMarkers are the incident's moments worth a line: each root
// blocker's transaction start (when on the chart), the DDL's first wait,
// each operator statement, the DDL's last attempt settling when it tried
// more than once, and the end.
func chartMarkers(inc analyze.Incident, from time.Time) []marker {
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
	return marks
}

// addMarkers draws each marker as a dashed line from zero to just above
// the highest stack, with its legend entry.
func addMarkers(p *plot.Plot, marks []marker, maxY float64) error {
	for _, m := range marks {
		l, err := plotter.NewLine(plotter.XYs{{X: chartX(m.at), Y: 0}, {X: chartX(m.at), Y: maxY * 1.05}})
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		l.Color, l.Width, l.Dashes = m.c, vg.Points(1.2), []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(m.name, l)
	}
	return nil
}

// plotSVG renders p, 20 by 10 centimetres, as SVG.
func plotSVG(p *plot.Plot) ([]byte, error) {
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
