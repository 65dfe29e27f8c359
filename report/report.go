// Package report writes the post-mortem of an analysed recording.
//
// Write renders postmortem.md from the analysis result with text/template:
// a summary paragraph per incident first, then impact, timeline, root
// blocker and DDL, the runbook walked through, the what-if replays,
// hardening advice drawn from the evidence, and a data-quality appendix.
// Output is deterministic: the same result gives the same bytes. Text that
// comes from the database is escaped (see fence, cell and inline).
package report

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/report/render"
)

//go:embed postmortem.md.tmpl
var postmortemTmpl string

var tmpl = template.Must(template.New("postmortem").Funcs(template.FuncMap{
	"fence":    fence,
	"cell":     cell,
	"inline":   inline,
	"code":     code,
	"app":      appName,
	"codecell": codeCell,
	"codes":    codes,
	"clock":    func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"datetime": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" },
	"tplus":    tplus,
	"assumptions": func(ws []analyze.WhatIf) string {
		var all []string
		for _, w := range ws {
			all = append(all, w.Assumptions...)
		}
		return inline(strings.Join(dedupe(append([]string{"each sample stands until the next"}, all...)), "; "))
	},
	"secs":       seconds,
	"dur":        human,
	"add":        func(a, b int) int { return a + b },
	"join":       strings.Join,
	"title":      title,
	"summary":    summary,
	"chain":      func(inc analyze.Incident) string { return chain(inc, code) },
	"timeline":   timeline,
	"impactApps": func(inc analyze.Incident) []analyze.AppImpact { return inc.Applications },
	"capacity":   capacity,
	"flows":      businessFlows,
	"trigger":    trigger,
	"rootCause":  func(inc analyze.Incident) string { r, _ := causes(inc); return r },
	"contrib":    func(inc analyze.Incident) []string { _, c := causes(inc); return c },
	"mitigation": mitigation,
	"observed":   observed,
	"versus":     versusRunbook,
	"items":      actionItems,
	"groups":     sessionGroups,
	"locks":      lockOn,
	"endWords":   analyze.EndingWords,
	"outWords":   analyze.OutcomeWords,
	"anchor":     func(id int) string { return fmt.Sprintf("incident-%d", id) },
	"deref":      func(t *time.Time) time.Time { return *t },
	"multi":      func(res *analyze.Result) bool { return len(res.Incidents) > 1 },
	"rels":       codes,
	"prose":      prose,
	"pipes":      func(s string) string { return strings.ReplaceAll(oneLineText(s), "|", `\|`) },
	"day": func(res *analyze.Result) string {
		if len(res.Incidents) > 0 {
			return res.Incidents[0].Start.UTC().Format("2006-01-02")
		}
		return res.Recording.Start.UTC().Format("2006-01-02")
	},
}).Parse(postmortemTmpl))

// Markdown renders the post-mortem.
func Markdown(res *analyze.Result) ([]byte, error) {
	var b bytes.Buffer
	if err := tmpl.Execute(&b, res); err != nil {
		return nil, fmt.Errorf("render post-mortem: %w", err)
	}
	return b.Bytes(), nil
}

// Renderer turns DOT into SVG.
type Renderer interface {
	SVG(ctx context.Context, dot string) ([]byte, error)
}

// Write writes dir/postmortem.md and, per incident, the blocking graph at
// its peak as blocking-N.dot and blocking-N.svg (all 0600: they quote
// query text and application names). The SVGs come from the renderer
// process, lockscope-render, started once for all of them (see
// report/render).
func Write(ctx context.Context, dir string, res *analyze.Result) error {
	r := &render.Process{}
	err := WriteWith(ctx, dir, res, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteWith is Write with the SVGs from r.
func WriteWith(ctx context.Context, dir string, res *analyze.Result, r Renderer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	md, err := Markdown(res)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write post-mortem: %w", err)
	}
	ranges := chartRanges(res.Incidents)
	for i, inc := range res.Incidents {
		tl := TimelineDOT(inc)
		tsvg, err := r.SVG(ctx, tl)
		if err != nil {
			return fmt.Errorf("incident %d timeline: %w", inc.ID, err)
		}
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("timeline-%d.dot", inc.ID)), []byte(tl)); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("timeline-%d.svg", inc.ID)), tsvg); err != nil {
			return err
		}
		dot := BlockingDOT(inc)
		svg, err := r.SVG(ctx, dot)
		if err != nil {
			return fmt.Errorf("incident %d blocking graph: %w", inc.ID, err)
		}
		base := filepath.Join(dir, fmt.Sprintf("blocking-%d", inc.ID))
		if err := writeFile(base+".dot", []byte(dot)); err != nil {
			return err
		}
		if err := writeFile(base+".svg", svg); err != nil {
			return err
		}
		chart, err := Chart(inc, ranges[i][0], ranges[i][1])
		if err != nil {
			return fmt.Errorf("incident %d queue chart: %w", inc.ID, err)
		}
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("queue-%d.svg", inc.ID)), chart); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(dir, "postmortem.md"), md)
}

// writeFile writes a report file 0600, synced, under a temporary name and
// renames it into place.
func writeFile(path string, data []byte) error { return recording.WriteFileAtomic(path, data) }

// tplus is t's offset from start: T+4.1 s, or T−0.1 s before it.
func tplus(start, t time.Time) string {
	d := t.Sub(start).Seconds()
	if d < 0 {
		return "T−" + seconds(-d)
	}
	return "T+" + seconds(d)
}

func seconds(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.1f s", s)
	}
	return human(s)
}

// human formats seconds as 4 m 12 s.
func human(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%d h %d m %d s", h, m, sec)
	case m > 0:
		return fmt.Sprintf("%d m %d s", m, sec)
	}
	return fmt.Sprintf("%.1f s", s)
}

// Event is one row of an incident's timeline. Who names the sessions it
// involves, as node ids of the timeline graph.
type Event struct {
	At   time.Time
	What string
	Who  []string
}

// timeline lists what the recording shows, in time order. What is plain
// text: the template escapes it for Markdown, the DOT builder for DOT.
func timeline(inc analyze.Incident) []Event {
	var ev []Event
	add := func(t time.Time, what string, who ...string) { ev = append(ev, Event{t.UTC(), what, who}) }
	for _, r := range inc.RootBlockers {
		if r.XactStart != nil && r.XactStart.Before(inc.Start) {
			add(*r.XactStart, fmt.Sprintf("root blocker pid %d (%s) begins its transaction", r.PID, r.Role), nodeID(r.PID))
		}
	}
	if d := inc.DDL; d != nil && d.FirstWait != nil {
		add(*d.FirstWait, fmt.Sprintf("DDL pid %d seen waiting for %s on %s", d.PID, d.Mode, d.Relation), nodeID(d.PID))
	}
	add(inc.Start, "the lock queue is first seen", "waiters")
	next := 10
	for _, q := range inc.Queue {
		for q.Depth >= next {
			add(q.TS, fmt.Sprintf("queue on %s reaches %d", q.Relation, next), "waiters")
			next *= 5
		}
	}
	add(inc.PeakAt, fmt.Sprintf("peak: %d sessions waiting", inc.PeakWaiters), "waiters")
	for _, op := range inc.Operator {
		what := fmt.Sprintf("pid %d runs %s", op.PID, oneLine(op.Query, 80))
		who := []string{}
		if op.Target != 0 {
			who = append(who, nodeID(op.Target))
		}
		add(op.At, what, who...)
	}
	for _, r := range inc.RootBlockers {
		if r.Gone != nil {
			add(*r.Gone, fmt.Sprintf("root blocker pid %d %s", r.PID, analyze.EndingWords(r.Ending)), nodeID(r.PID))
		}
	}
	if d := inc.DDL; d != nil {
		for i, a := range d.AttemptLog {
			if a.End == nil || (i == len(d.AttemptLog)-1 && d.Settled != nil && a.End.Equal(*d.Settled)) {
				continue
			}
			if i > 0 || len(d.AttemptLog) > 1 {
				add(*a.End, fmt.Sprintf("DDL pid %d, attempt %d: %s", d.PID, i+1, analyze.OutcomeWords(a.Outcome)), nodeID(d.PID))
			}
		}
		if d.Settled != nil {
			n := ""
			if d.Attempts > 1 {
				n = fmt.Sprintf(", attempt %d of %d", d.Attempts, d.Attempts)
			}
			add(*d.Settled, fmt.Sprintf("DDL pid %d%s: %s", d.PID, n, analyze.OutcomeWords(d.Outcome)), nodeID(d.PID))
		}
	}
	if inc.End != nil {
		add(*inc.End, "the queue has drained", "waiters")
	}
	for _, g := range inc.Gaps {
		add(g.Start, "no samples until "+g.End.UTC().Format("15:04:05")+" ("+g.Reason+")")
	}
	// Stable order: by time, then as added.
	for i := 1; i < len(ev); i++ {
		for j := i; j > 0 && ev[j].At.Before(ev[j-1].At); j-- {
			ev[j], ev[j-1] = ev[j-1], ev[j]
		}
	}
	return ev
}

var createIndex = regexp.MustCompile(`(?i)^\s*create\s+(unique\s+)?index\b`)
var concurrently = regexp.MustCompile(`(?i)\bconcurrently\b`)

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// oneLine folds s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}
