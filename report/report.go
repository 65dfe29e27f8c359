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
	"github.com/lockscope/lockscope/report/render"
)

//go:embed postmortem.md.tmpl
var postmortemTmpl string

var tmpl = template.Must(template.New("postmortem").Funcs(template.FuncMap{
	"fence":    fence,
	"code":     code,
	"cell":     cell,
	"inline":   inline,
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
	"secs":     seconds,
	"dur":      human,
	"add":      func(a, b int) int { return a + b },
	"join":     strings.Join,
	"summary":  summary,
	"timeline": timeline,
	"harden":   hardening,
	"anchor":   func(id int) string { return fmt.Sprintf("incident-%d", id) },
	"deref":    func(t *time.Time) time.Time { return *t },
	"rels": func(r []string) string {
		if len(r) == 0 {
			return "no named relation"
		}
		return inline(strings.Join(r, ", "))
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
	for _, inc := range res.Incidents {
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
		chart, err := QueueChart(inc)
		if err != nil {
			return fmt.Errorf("incident %d queue chart: %w", inc.ID, err)
		}
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("queue-%d.svg", inc.ID)), chart); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(dir, "postmortem.md"), md)
}

// writeFile writes a report file 0600 under a temporary name and renames
// it into place.
func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

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

// Summary is the incident in one paragraph, as the post-mortem opens it:
// what, where, when, the root cause in a sentence, the blast radius, how it
// ended. Names and states are quoted as Markdown code spans.
func Summary(inc analyze.Incident) string { return summary(inc) }

// summary is the incident in one paragraph: what, where, when, the root
// cause in a sentence, the blast radius, how it ended.
func summary(inc analyze.Incident) string {
	var b strings.Builder
	what := map[string]string{
		analyze.KindDDLLockQueue: "A DDL lock queue",
		analyze.KindRowLock:      "Row-lock contention",
		analyze.KindOther:        "Lock contention",
	}[inc.Kind]
	fmt.Fprintf(&b, "%s on %s, from %s for %s. ", what, rels(inc.Relations), inc.Start.UTC().Format("2006-01-02 15:04:05 UTC"), human(inc.Duration))
	if len(inc.RootBlockers) > 0 {
		r := inc.RootBlockers[0]
		holds := "its locks"
		if len(r.Locks) > 0 {
			var parts []string
			for _, l := range r.Locks {
				parts = append(parts, l.Mode+" on "+l.Target)
			}
			holds = strings.Join(parts, " and ")
		}
		if r.GID != "" {
			fmt.Fprintf(&b, "Root cause: the prepared transaction %s (no backend; owner %s, database %s), prepared %s before it was first seen blocking, held %s",
				code(r.GID), inline(r.User), inline(r.Database), human(r.TransactionAge), inline(holds))
		} else {
			fmt.Fprintf(&b, "Root cause: %s session pid %d (%s), %s, held %s", article(r.Role), r.PID, inline(r.ApplicationName), inline(r.State), inline(holds))
		}
		if d := inc.DDL; d != nil && d.PID != r.PID {
			fmt.Fprintf(&b, "; the %s's %s request on %s queued behind it for %s and %d sessions queued behind the DDL", roleWord(d), d.Mode, inline(d.Relation), human(d.Waited), d.QueuedBehind)
		} else if d != nil {
			fmt.Fprintf(&b, " — the DDL's own transaction — and %d sessions queued behind it", r.PeakBehind)
		} else {
			fmt.Fprintf(&b, " and %d sessions queued behind it", r.PeakBehind)
		}
		b.WriteString(". ")
	}
	fmt.Fprintf(&b, "Blast radius: %d sessions waiting at the peak, %.1f waiter-seconds. ", inc.PeakWaiters, inc.WaiterSeconds)
	if inc.End == nil {
		b.WriteString("The queue had not drained when the recording ends.")
	} else if len(inc.RootBlockers) > 0 && inc.RootBlockers[0].Gone != nil {
		r := inc.RootBlockers[0]
		how := "released its locks"
		if r.Ended {
			how = "was terminated (or disconnected)"
		}
		who := fmt.Sprintf("pid %d", r.PID)
		if r.GID != "" {
			who, how = "the prepared transaction "+code(r.GID), "was finished (ROLLBACK PREPARED or COMMIT PREPARED)"
		}
		fmt.Fprintf(&b, "It ended when %s %s, %s after the queue formed; the queue drained %s later.", who, how, human(r.Gone.Sub(inc.Start).Seconds()), drain(r))
	} else {
		b.WriteString("The queue drained.")
	}
	return b.String()
}

func drain(r analyze.RootBlocker) string {
	if r.DrainSeconds == nil {
		return "—"
	}
	return seconds(*r.DrainSeconds)
}

func roleWord(d *analyze.DDL) string { return "migration" }

func article(role string) string {
	if role == "" {
		return "a"
	}
	if strings.ContainsRune("aeiou", rune(role[0])) {
		return "an " + role
	}
	return "a " + role
}

func rels(r []string) string {
	if len(r) == 0 {
		return "no named relation"
	}
	return inline(strings.Join(r, ", "))
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
	for _, r := range inc.RootBlockers {
		if r.Gone != nil {
			how := "releases its locks"
			if r.Ended {
				how = "is gone (terminated or disconnected)"
			}
			add(*r.Gone, fmt.Sprintf("root blocker pid %d %s", r.PID, how), nodeID(r.PID))
		}
	}
	if d := inc.DDL; d != nil && d.Settled != nil {
		add(*d.Settled, fmt.Sprintf("DDL pid %d: %s", d.PID, strings.ReplaceAll(d.Outcome, "_", " ")), nodeID(d.PID))
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

// hardening is the advice the evidence supports, each with the practice
// or setting that would have prevented it and the migration linters' rule.
func hardening(inc analyze.Incident) []string {
	var out []string
	d := inc.DDL
	if d != nil && d.Attempts == 1 && d.Waited > 1 {
		out = append(out, fmt.Sprintf("The migration's %s waited %s without a lock_timeout: run DDL with `SET lock_timeout = '2s'` (or less) and retry, so it fails fast instead of queueing everyone behind it — squawk's `require-timeout-settings`, pgroll's `--lock-timeout` (500 ms by default, with retries), strong_migrations (warns above 10 s), GitLab's `with_lock_retries`.",
			d.Mode, human(d.Waited)))
	}
	if d != nil && d.Attempts > 1 {
		out = append(out, fmt.Sprintf("The migration retried after lock_timeout (%d attempts): good practice; back off between attempts and keep the timeout short so each attempt's queue stays small.", d.Attempts))
	}
	if d != nil && createIndex.MatchString(d.Query) && !concurrently.MatchString(d.Query) {
		out = append(out, "A plain `CREATE INDEX` takes ShareLock and blocks every write for its duration: use `CREATE INDEX CONCURRENTLY` (outside a transaction block).")
	}
	if d != nil && d.Outcome == analyze.OutcomeHeld {
		out = append(out, "The migration kept its transaction open after the DDL, holding the lock while it did other work: commit right after each DDL step, or split the change into small steps.")
	}
	for _, r := range inc.RootBlockers {
		if strings.HasPrefix(r.State, "idle in transaction") {
			out = append(out, fmt.Sprintf("Root blocker pid %d sat idle in transaction (transaction %s old when first seen blocking): set `idle_in_transaction_session_timeout` (for example 60 s for application roles) so an abandoned transaction cannot hold locks indefinitely.", r.PID, human(r.TransactionAge)))
		}
		if r.Role == analyze.RoleOdooCron && d != nil && d.PID != r.PID {
			out = append(out, "A cron job's transaction blocked the upgrade: pause crons during upgrade windows (Odoo does not start new jobs while modules are `to upgrade`, but a job already running keeps its transaction).")
		}
	}
	if inc.Kind == analyze.KindRowLock {
		out = append(out, "Sessions queued on one row held by a long transaction: keep transactions that update hot rows short, and take row locks late.")
	}
	if len(out) == 0 {
		out = append(out, "Nothing in the recording points to a missing guardrail.")
	}
	return dedupe(out)
}

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
