package report

import (
	"bytes"
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lockscope/lockscope/analyze"
)

// QueueChart plots the queue depth on each relation over the incident (in
// seconds from its start), with the root blockers' end and the DDL's
// settling marked as vertical lines. It returns SVG.
func QueueChart(inc analyze.Incident) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Incident %d: lock queue depth", inc.ID)
	p.X.Label.Text = "seconds since the queue formed (" + inc.Start.UTC().Format("15:04:05") + " UTC)"
	p.Y.Label.Text = "sessions waiting"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true

	series := map[string]plotter.XYs{}
	var rels []string
	for _, q := range inc.Queue {
		if _, ok := series[q.Relation]; !ok {
			rels = append(rels, q.Relation)
		}
		series[q.Relation] = append(series[q.Relation], plotter.XY{X: q.TS.Sub(inc.Start).Seconds(), Y: float64(q.Depth)})
	}
	slices.Sort(rels)
	if inc.End != nil { // drained: every queue ends at zero
		for _, rel := range rels {
			series[rel] = append(series[rel], plotter.XY{X: inc.End.Sub(inc.Start).Seconds(), Y: 0})
		}
	}
	maxY := 1.0
	for i, rel := range rels {
		line, err := plotter.NewLine(series[rel])
		if err != nil {
			return nil, fmt.Errorf("queue chart: %w", err)
		}
		line.Color = palette[i%len(palette)]
		line.Width = vg.Points(1.5)
		line.StepStyle = plotter.PostStep
		p.Add(line)
		p.Legend.Add(rel, line)
		for _, xy := range series[rel] {
			maxY = max(maxY, xy.Y)
		}
	}
	// Head room for the legend above the lines.
	p.Y.Max = maxY * 1.7
	p.X.Min = 0
	p.X.Max = max(inc.Duration, 1) * 1.08
	mark := func(at float64, name string, c color.Color) error {
		l, err := plotter.NewLine(plotter.XYs{{X: at, Y: 0}, {X: at, Y: maxY * 1.1}})
		if err != nil {
			return err
		}
		l.Color, l.Dashes = c, []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	for _, r := range inc.RootBlockers {
		if r.Gone != nil {
			if err := mark(r.Gone.Sub(inc.Start).Seconds(), fmt.Sprintf("root blocker %d gone", r.PID), color.RGBA{R: 176, A: 255}); err != nil {
				return nil, err
			}
		}
	}
	if d := inc.DDL; d != nil && d.Settled != nil {
		if err := mark(d.Settled.Sub(inc.Start).Seconds(), "DDL "+d.Outcome, color.RGBA{G: 120, B: 60, A: 255}); err != nil {
			return nil, err
		}
	}
	p.Add(plotter.NewGrid())
	w, err := p.WriterTo(16*vg.Centimeter, 8*vg.Centimeter, "svg")
	if err != nil {
		return nil, fmt.Errorf("queue chart: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("queue chart: %w", err)
	}
	return buf.Bytes(), nil
}

var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255},
	color.RGBA{R: 140, G: 86, B: 75, A: 255},
}
