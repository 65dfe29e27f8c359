package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/report/render/graphviz"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// analyzeFixture analyses one of the committed recordings.
func analyzeFixture(t *testing.T, name string) *analyze.Result {
	t.Helper()
	res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{filepath.Join("..", "fixtures", name, "recording")}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The post-mortem of every recorded fixture is golden: review changes with
// `go test ./report -update` and git diff.
func TestPostmortemGolden(t *testing.T) {
	dirs, err := filepath.Glob("../fixtures/*/recording")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		t.Run(name, func(t *testing.T) {
			res := analyzeFixture(t, name)
			got, err := Markdown(res)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Markdown(res)
			if string(again) != string(got) {
				t.Fatal("two renderings of one result differ")
			}
			checkGolden(t, name+".postmortem.md", string(got))
		})
	}
}

// Query text and application names are the database's, and hostile ones
// must neither break the Markdown nor inject HTML.
func TestHostileTextIsEscaped(t *testing.T) {
	res := analyzeFixture(t, "cron-vs-alter")
	inc := &res.Incidents[0]
	hostile := "SELECT '```' || $x$ <script>alert(1)</script> | pipe\n## fake heading $x$ -- ````` `"
	inc.RootBlockers[0].Query = hostile
	inc.RootBlockers[0].ApplicationName = "evil|<img src=x onerror=alert(1)>\n# x"
	inc.Waiters[0].ApplicationName = "a|b\nc"
	md, err := Markdown(res)
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	// Outside code blocks and code spans, no markup of theirs survives.
	bare := stripCodeSpans(s)
	for _, bad := range []string{"<script>", "<img", "\n## fake heading", "\n# x"} {
		if strings.Contains(bare, bad) && !insideFence(bare, bad) {
			t.Errorf("rendered %q outside a code block or span", bad)
		}
	}
	// The query is in a fence longer than its longest backtick run.
	if !strings.Contains(s, "``````sql\n"+hostile+"\n``````") {
		t.Error("hostile query not fenced with six backticks")
	}
	// Every table row still has the same number of cells as its header.
	checkTables(t, s)
}

// stripCodeSpans removes the code spans of every line (a run of n
// backticks up to the next run of exactly n), as CommonMark reads them.
func stripCodeSpans(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		var b strings.Builder
		for i := 0; i < len(line); {
			if line[i] != '`' {
				b.WriteByte(line[i])
				i++
				continue
			}
			n := 0
			for i+n < len(line) && line[i+n] == '`' {
				n++
			}
			end := -1
			for j := i + n; j < len(line); {
				if line[j] != '`' {
					j++
					continue
				}
				m := 0
				for j+m < len(line) && line[j+m] == '`' {
					m++
				}
				if m == n {
					end = j + m
					break
				}
				j += m
			}
			if end < 0 || n >= 3 && i == 0 {
				b.WriteString(line[i : i+n])
				i += n
				continue
			}
			b.WriteString("CODE")
			i = end
		}
		out = append(out, b.String())
	}
	return strings.Join(out, "\n")
}

// insideFence reports whether every occurrence of sub lies in a fenced
// code block.
func insideFence(s, sub string) bool {
	in := false
	fenceLen := 0
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimLeft(line, "`")
		n := len(line) - len(trimmed)
		if n >= 3 && (!in || (n >= fenceLen && trimmed == "")) {
			if !in {
				in, fenceLen = true, n
			} else {
				in = false
			}
			continue
		}
		if !in && strings.Contains("\n"+line, sub) {
			return false
		}
	}
	return true
}

func checkTables(t *testing.T, s string) {
	t.Helper()
	cells := -1
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "|") {
			cells = -1
			continue
		}
		n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
		if cells < 0 {
			cells = n
		} else if n != cells {
			t.Errorf("table row with %d separators, header has %d: %s", n, cells, line)
		}
	}
}

// The blocking graph's DOT is golden; its SVG is parsed and must hold the
// root blocker, the DDL and the grouped waiters.
func TestBlockingGraph(t *testing.T) {
	dirs, _ := filepath.Glob("../fixtures/*/recording")
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		t.Run(name, func(t *testing.T) {
			res := analyzeFixture(t, name)
			inc := res.Incidents[0]
			dot := BlockingDOT(inc)
			checkGolden(t, name+".blocking-1.dot", dot)
			checkGolden(t, name+".timeline-1.dot", TimelineDOT(inc))
			svg, err := graphviz.SVG(context.Background(), dot)
			if err != nil {
				t.Fatal(err)
			}
			titles := svgNodeTitles(t, svg)
			var want2 []string
			if len(inc.RootBlockers) > 0 {
				want2 = append(want2, fmt.Sprintf("pid%d", inc.RootBlockers[0].PID))
			}
			if inc.Deadlock != nil {
				for _, m := range inc.Deadlock.Members {
					want2 = append(want2, fmt.Sprintf("pid%d", m.PID))
				}
			}
			if len(want2) == 0 && (inc.Contention == nil || !inc.Contention.Churn) {
				t.Fatalf("incident %d (%s) has no root blocker and no deadlock cycle to draw", inc.ID, inc.Kind)
			}
			if inc.DDL != nil {
				want2 = append(want2, fmt.Sprintf("pid%d", inc.DDL.PID))
			}
			for _, id := range want2 {
				if !slices.Contains(titles, id) {
					t.Errorf("SVG nodes %v lack %s", titles, id)
				}
			}
			if len(inc.Waiters) > 8 && !slices.ContainsFunc(titles, func(s string) bool { return strings.HasPrefix(s, "group") }) {
				t.Errorf("%d waiters drawn without grouping: %v", len(inc.Waiters), titles)
			}
		})
	}
}

// svgNodeTitles parses an SVG and returns the titles of its node groups.
func svgNodeTitles(t *testing.T, svg []byte) []string {
	t.Helper()
	var titles []string
	inNode, inTitle := false, false
	eachSVGToken(t, svg, func(tok xml.Token) {
		switch e := tok.(type) {
		case xml.StartElement:
			if e.Name.Local == "g" {
				for _, a := range e.Attr {
					if a.Name.Local == "class" && a.Value == "node" {
						inNode = true
					}
				}
			}
			inTitle = inNode && e.Name.Local == "title"
		case xml.CharData:
			if inTitle {
				titles = append(titles, string(e))
				inTitle, inNode = false, false
			}
		}
	})
	return titles
}

// eachSVGToken parses svg as XML, calling f with each token in turn; an
// SVG that does not parse fails the test.
func eachSVGToken(t *testing.T, svg []byte, f func(xml.Token)) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		f(tok)
	}
}

// DOT built from hostile text still parses and renders.
func TestHostileDOT(t *testing.T) {
	res := analyzeFixture(t, "cron-vs-alter")
	inc := res.Incidents[0]
	inc.RootBlockers[0].ApplicationName = `x" ]; evil [label="pwned"]; "\N\l<b>` + "\n}"
	inc.RootBlockers[0].State = `a\"b`
	dot := BlockingDOT(inc)
	svg, err := graphviz.SVG(context.Background(), dot)
	if err != nil {
		t.Fatalf("hostile DOT does not render: %v\n%s", err, dot)
	}
	if slices.Contains(svgNodeTitles(t, svg), "evil") {
		t.Error("an application name injected a node")
	}
}

// The chart is SVG: waiters stacked by application, the markers (the
// DDL's first wait, the operator's terminate, the end) and the chain as
// its title.
func TestQueueChart(t *testing.T) {
	res := analyzeFixture(t, "chain")
	inc := res.Incidents[0]
	svg, err := QueueChart(inc)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	inText := false
	eachSVGToken(t, svg, func(tok xml.Token) {
		switch e := tok.(type) {
		case xml.StartElement:
			inText = e.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	})
	all := strings.Join(texts, "|")
	wants := []string{"sessions waiting", "odoo-* (odoo-http)", "odoo-* (migration)", "queue drained (ended by the blocker side)",
		fmt.Sprintf("SELECT pg_terminate_backend(%d)", inc.RootBlockers[0].PID), "ALTER TABLE stock_move first waits",
		"odoo-http idle in transaction", "→ ALTER TABLE stock_move →"}
	for _, want := range wants {
		if !strings.Contains(all, want) {
			t.Errorf("chart text %q lacks %q", all, want)
		}
	}
}

// The timeline is drawn on a time axis: its numbered event markers stand
// left to right in the events' time order, at x positions proportional to
// time, and the lanes name the root blocker and the waiting sessions.
func TestTimelineGraph(t *testing.T) {
	for _, name := range []string{"cron-vs-alter", "row-contention", "lock-timeout-retry", "deadlock", "prepared-root"} {
		res := analyzeFixture(t, name)
		inc := res.Incidents[0]
		svg, err := graphviz.SVG(context.Background(), TimelineDOT(inc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		events := timeline(inc)
		xs := markerXs(t, svg)
		if len(xs) != len(events) {
			t.Fatalf("%s: %d markers for %d events", name, len(xs), len(events))
		}
		first, last := events[0].At, events[len(events)-1].At
		for i := 1; i < len(xs); i++ {
			if xs[i] < xs[i-1]-0.01 {
				t.Errorf("%s: marker %d at x=%.1f left of marker %d at x=%.1f", name, i+1, xs[i], i, xs[i-1])
			}
		}
		if span := last.Sub(first).Seconds(); span > 0 && len(xs) > 2 {
			// Proportional: the middle events' x is where their time says.
			for i, e := range events {
				want := xs[0] + (xs[len(xs)-1]-xs[0])*e.At.Sub(first).Seconds()/span
				if math.Abs(xs[i]-want) > 2 {
					t.Errorf("%s: marker %d at x=%.1f, its time puts it at %.1f", name, i+1, xs[i], want)
				}
			}
		}
		text := string(svg)
		if !strings.Contains(text, "sessions waiting") {
			t.Errorf("%s: no lane for the waiting sessions", name)
		}
		if len(inc.RootBlockers) > 0 && !strings.Contains(text, "root blocker pid") && !strings.Contains(text, "prepared transaction") {
			t.Errorf("%s: no lane for the root blocker", name)
		}
		if inc.Deadlock != nil && !strings.Contains(text, "deadlock member") {
			t.Errorf("%s: no lanes for the deadlock's members", name)
		}
	}
}

// markerXs returns the centre x of each numbered marker (node m…), in the
// order of their numbers.
func markerXs(t *testing.T, svg []byte) []float64 {
	t.Helper()
	type marker struct {
		n int
		x float64
	}
	var ms []marker
	var cur string
	eachSVGToken(t, svg, func(tok xml.Token) {
		switch e := tok.(type) {
		case xml.StartElement:
			if e.Name.Local == "ellipse" && cur != "" {
				for _, a := range e.Attr {
					if a.Name.Local == "cx" {
						x, _ := strconv.ParseFloat(a.Value, 64)
						ms = append(ms, marker{len(ms), x})
					}
				}
				cur = ""
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(e)); strings.HasPrefix(s, "m") && len(s) > 1 {
				if _, err := strconv.Atoi(s[1:]); err == nil {
					cur = s
				}
			}
		}
	})
	xs := make([]float64, len(ms))
	for i, m := range ms {
		xs[i] = m.x
	}
	return xs
}

func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	golden := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", file, diff)
	}
}

// Several incidents get an index at the top and a section each.
func TestSeveralIncidents(t *testing.T) {
	res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{"../fixtures/cron-vs-alter/recording", "../fixtures/row-contention/recording"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 2 {
		t.Fatalf("%d incidents", len(res.Incidents))
	}
	dir := t.TempDir()
	if err := WriteWith(context.Background(), dir, res, graphviz.InProcess{}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "postmortem.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	for _, want := range []string{"## Incidents", "[1](#incident-1)", "[2](#incident-2)", `<a id="incident-2"></a>`, "## Incident 2: row_lock_contention — "} {
		if !strings.Contains(s, want) {
			t.Errorf("post-mortem lacks %q", want)
		}
	}
	index, section := strings.Index(s, "## Incidents"), strings.Index(s, "## Incident 1:")
	if index < 0 || section < index {
		t.Error("the index does not come before the incidents")
	}
	for _, f := range []string{"blocking-1.svg", "blocking-2.svg", "timeline-2.svg", "queue-2.svg"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

// The draft opens with at most three sentences, and writes identifiers
// as code spans or plain text, never with backslash escapes.
func TestDraftShape(t *testing.T) {
	dirs, _ := filepath.Glob("../fixtures/*/recording")
	sentence := regexp.MustCompile(`[.!?](\s|$)`)
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		t.Run(name, func(t *testing.T) {
			res := analyzeFixture(t, name)
			for _, inc := range res.Incidents {
				if n := len(sentence.FindAllString(stripCodeSpans(Summary(inc)), -1)); n > 3 {
					t.Errorf("summary has %d sentences:\n%s", n, Summary(inc))
				}
			}
			md, err := Markdown(res)
			if err != nil {
				t.Fatal(err)
			}
			s := string(md)
			if m := regexp.MustCompile(`[A-Za-z0-9]\\_[A-Za-z0-9]`).FindString(s); m != "" {
				t.Errorf("an identifier escaped with a backslash: %q", m)
			}
			for _, want := range []string{"### Summary", "### Impact", "### Trigger", "### Causes", "### Detection and response", "### Action items",
				"## What went well", "**[to fill in]**", "## Appendix: incident 1 in detail", "## Appendix: data quality"} {
				if !strings.Contains(s, want) {
					t.Errorf("draft lacks %q", want)
				}
			}
			// The title names the date, the effect and the table.
			inc := res.Incidents[0]
			if first := strings.SplitN(s, "\n", 2)[0]; len(res.Incidents) == 1 && len(inc.Relations) > 0 &&
				(!strings.HasPrefix(first, "# "+inc.Start.UTC().Format("2006-01-02 15:04")+" UTC — ") || !strings.Contains(first, "`"+inc.Relations[0]+"`")) {
				t.Errorf("title %q", first)
			}
		})
	}
}

// Incidents that overlap in time share one time axis; others keep their
// own.
func TestChartRangesShareOverlaps(t *testing.T) {
	at := func(s float64) time.Time {
		return time.Unix(1_800_000_000, 0).UTC().Add(time.Duration(s * float64(time.Second)))
	}
	end := func(s float64) *time.Time { e := at(s); return &e }
	incs := []analyze.Incident{
		{ID: 1, Start: at(0), End: end(10), Duration: 10},
		{ID: 2, Start: at(5), End: end(30), Duration: 25},
		{ID: 3, Start: at(600), End: end(604), Duration: 4},
	}
	r := chartRanges(incs)
	if r[0] != r[1] {
		t.Errorf("overlapping incidents 1 and 2 on different axes: %v, %v", r[0], r[1])
	}
	if !r[0][0].Before(at(0)) || !r[0][1].After(at(30)) {
		t.Errorf("shared axis %v does not run from before 1 to after 2", r[0])
	}
	if r[2] == r[0] || r[2][0].Before(at(590)) {
		t.Errorf("incident 3, ten minutes later, on %v", r[2])
	}
}
