package report

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lockscope/lockscope/analyze"
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
			golden := filepath.Join("testdata", name+".postmortem.md")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./report -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("postmortem.md (-want +got):\n%s", diff)
			}
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
	for _, bad := range []string{"<script>", "<img", "\n## fake heading"} {
		if strings.Contains(s, bad) && !insideFence(s, bad) {
			t.Errorf("rendered %q outside a code block", bad)
		}
	}
	// The query is in a fence longer than its longest backtick run.
	if !strings.Contains(s, "``````sql\n"+hostile+"\n``````") {
		t.Error("hostile query not fenced with six backticks")
	}
	// Every table row still has the same number of cells as its header.
	checkTables(t, s)
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
