package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// plantDamaged puts two damaged segments into a recording beside its good
// ones, in its cluster, a year before it: a copy of a good segment whose
// ticks file is cut in half (a disk that filled), and a Parquet file of
// another tool named like a segment. It returns their paths and bytes.
func plantDamaged(t *testing.T, rec string) map[string][]byte {
	t.Helper()
	segs, err := recording.List(rec)
	if err != nil || len(segs) == 0 {
		t.Fatalf("no good segment in %s: %v", rec, err)
	}
	good := segs[0]
	cluster := good.Meta.Cluster
	old := time.Date(2025, 11, 24, 9, 0, 0, 0, time.UTC)
	planted := map[string][]byte{}

	truncID := recording.NewSegmentID(old)
	for table, src := range good.Files {
		dst, err := recording.TablePath(rec, table, cluster, truncID)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if table == recording.TableTicks {
			data = data[:len(data)/2]
		}
		os.MkdirAll(filepath.Dir(dst), 0o700)
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if table == recording.TableTicks {
			planted[dst] = data
		}
	}

	foreign, err := recording.TablePath(rec, recording.TableTicks, cluster, recording.NewSegmentID(old.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	type other struct {
		A int64  `parquet:"a"`
		B string `parquet:"b"`
	}
	writeParquet(t, foreign, []other{{1, "x"}}, nil)
	data, _ := os.ReadFile(foreign)
	planted[foreign] = data

	for p := range planted {
		os.Chtimes(p, old, old)
	}
	return planted
}

// TestDamagedSegments: a recording directory with a truncated segment and
// a foreign file beside good segments. capture starts, names each damaged
// file once (log and events) and seals new segments, leaving them be;
// analyze, replay and train read the good segments and list the damaged
// ones; --strict fails; retention removes them like any other segment
// and says so.
func TestDamagedSegments(t *testing.T) {
	db, rec, truth := recordSaleOrder(t)
	planted := plantDamaged(t, rec)
	untouched := func(when string) {
		t.Helper()
		for p, want := range planted {
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: damaged file %s removed or rewritten: %v", when, p, err)
			}
		}
	}
	namesEachOnce := func(what, stderr string) {
		t.Helper()
		for p := range planted {
			if n := strings.Count(stderr, p); n != 1 {
				t.Errorf("%s names %s %d times, want once:\n%s", what, p, n, stderr)
			}
		}
	}

	t.Run("capture", func(t *testing.T) {
		before, _ := recording.Scan(rec)
		// --retain-age 0: the year-old damaged segments are kept here.
		_, stderr, code := run(t, "capture", "--dsn", db, "--out", rec, "--duration", "1500ms", "--retain-age", "0")
		if code != 0 {
			t.Fatalf("capture: exit %d:\n%s", code, stderr)
		}
		namesEachOnce("capture", stderr)
		untouched("after capture")
		after, err := recording.Scan(rec)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before)+1 || after[len(after)-1].Damage != nil {
			t.Fatalf("capture sealed no new good segment: %d segments before, %d after", len(before), len(after))
		}
		events, _, err := recording.ReadTable[recording.Event](after[len(after)-1].Files[recording.TableEvents])
		if err != nil {
			t.Fatal(err)
		}
		for p := range planted {
			n := 0
			for _, e := range events {
				if e.Kind == recording.EventWarning && strings.Contains(e.Message, p) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d warning events name %s, want 1: %+v", n, p, events)
			}
		}
	})

	t.Run("analyze", func(t *testing.T) {
		out, stderr := analyzeSaleOrder(t, rec, truth)
		namesEachOnce("analyze", stderr)
		res := readResult(t, out)
		reasons := map[string]string{}
		for _, d := range res.Recording.Damaged {
			reasons[d.File] = d.Reason
		}
		for p := range planted {
			if reasons[p] == "" {
				t.Errorf("incident.json recording.damaged lacks %s: %+v", p, res.Recording.Damaged)
			}
		}
		for p, r := range reasons {
			if strings.Contains(r, p) {
				t.Errorf("the reason repeats the path: %q", r)
			}
		}
		pm, _ := os.ReadFile(filepath.Join(out, "postmortem.md"))
		for p := range planted {
			if !strings.Contains(string(pm), "damaged segments, left out") || !strings.Contains(string(pm), filepath.Base(p)) {
				t.Errorf("the post-mortem's data-quality appendix does not list %s", p)
			}
		}
		untouched("after analyze")
	})

	t.Run("replay and train", func(t *testing.T) {
		stdout, stderr, code := run(t, "replay", rec, "--at", "peak", "--view", "blocking")
		if code != 0 || !strings.Contains(stdout, "blocking") {
			t.Fatalf("replay: exit %d:\n%s\n%s", code, stdout, stderr)
		}
		namesEachOnce("replay", stderr)
		stdout, stderr, code = run(t, "train", rec, "--lines")
		if code != 0 || !strings.Contains(stdout, "Training on incident") {
			t.Fatalf("train: exit %d:\n%s\n%s", code, stdout, stderr)
		}
		namesEachOnce("train", stderr)
	})

	t.Run("strict", func(t *testing.T) {
		for _, args := range [][]string{{"analyze", rec, "--strict"}, {"replay", rec, "--at", "peak", "--strict"}, {"train", rec, "--lines", "--strict"}} {
			_, stderr, code := run(t, args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "--strict") {
				t.Errorf("%s --strict: exit %d, stderr:\n%s", args[0], code, stderr)
				continue
			}
			named := false
			for p := range planted {
				named = named || strings.Contains(lines[0], p)
			}
			if !named {
				t.Errorf("%s --strict: %q names no damaged file", args[0], lines[0])
			}
		}
	})

	t.Run("recover", func(t *testing.T) {
		stdout, stderr, code := run(t, "recover", rec)
		if code != 0 || !strings.Contains(stdout, "2 damaged one(s) left in place") {
			t.Errorf("recover: exit %d:\n%s\n%s", code, stdout, stderr)
		}
		untouched("after recover")
	})

	t.Run("retention", func(t *testing.T) {
		// The damaged segments are a year old: past --retain-age, they go
		// like any quiet segment, and the log says which were damaged.
		_, stderr, code := run(t, "capture", "--dsn", db, "--out", rec, "--duration", "1500ms", "--retain-age", "720h")
		if code != 0 {
			t.Fatalf("capture: exit %d:\n%s", code, stderr)
		}
		for p := range planted {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("retention left %s: %v", p, err)
			}
			removed := false
			for _, line := range strings.Split(stderr, "\n") {
				if strings.Contains(line, "retention: damaged segment removed") && strings.Contains(line, p) {
					removed = true
				}
			}
			if !removed {
				t.Errorf("no log line says the damaged %s was removed:\n%s", p, stderr)
			}
		}
		segs, err := recording.Scan(rec)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			if s.Damage != nil {
				t.Errorf("a damaged segment is left: %+v", s.Damage)
			}
		}
	})
}
