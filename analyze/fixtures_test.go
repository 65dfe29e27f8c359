package analyze_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

// The committed fixtures are real recordings of staged incidents; analyzing
// them needs no database, so this runs under -short too. Each is checked
// against the truth written when it was staged.
func TestAnalyzeRecordedFixtures(t *testing.T) {
	dirs, err := filepath.Glob("../fixtures/*/truth.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < len(scenario.Scenarios) {
		t.Fatalf("found %d recorded fixtures, want one per scenario (%d): run make fixtures", len(dirs), len(scenario.Scenarios))
	}
	for _, truthFile := range dirs {
		dir := filepath.Dir(truthFile)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(truthFile)
			if err != nil {
				t.Fatal(err)
			}
			var truth scenario.Truth
			if err := json.Unmarshal(data, &truth); err != nil {
				t.Fatal(err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{filepath.Join(dir, "recording")}, Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			checkIncident(t, truth, res)
			checkTables(t, res, mem)
			checkWaiting(t, res)
			mem.AssertSize(t, 0)
		})
	}
}

// checkWaiting checks the waiting series against the incident's totals:
// it sums to WaiterSeconds, peaks at PeakWaiters at PeakAt, and
// WaiterSecondsBetween splits it at any instant without loss.
func checkWaiting(t *testing.T, res *analyze.Result) {
	t.Helper()
	for _, inc := range res.Incidents {
		var sum float64
		peak, peakAt := 0, time.Time{}
		for _, p := range inc.Waiting {
			sum += float64(p.Waiters) * p.Seconds
			if p.Waiters > peak {
				peak, peakAt = p.Waiters, p.TS
			}
		}
		if math.Abs(sum-inc.WaiterSeconds) > 0.01*float64(len(inc.Waiting))+0.01 {
			t.Errorf("incident %d: waiting series sums to %.3f waiter-seconds, incident says %.3f", inc.ID, sum, inc.WaiterSeconds)
		}
		if peak != inc.PeakWaiters || !peakAt.Equal(inc.PeakAt) {
			t.Errorf("incident %d: waiting series peaks at %d at %v, incident says %d at %v", inc.ID, peak, peakAt, inc.PeakWaiters, inc.PeakAt)
		}
		far := inc.Start.Add(-time.Hour)
		whole := inc.WaiterSecondsBetween(far, far.Add(100*time.Hour))
		mid := inc.Start.Add(time.Duration(inc.Duration * float64(time.Second) / 2))
		a, b := inc.WaiterSecondsBetween(far, mid), inc.WaiterSecondsBetween(mid, far.Add(100*time.Hour))
		if math.Abs(whole-inc.WaiterSeconds) > 0.01*float64(len(inc.Waiting))+0.01 || math.Abs(a+b-whole) > 0.01 || a <= 0 || b < 0 {
			t.Errorf("incident %d: WaiterSecondsBetween: whole %.3f (want %.3f), halves %.3f + %.3f", inc.ID, whole, inc.WaiterSeconds, a, b)
		}
	}
}

// checkTables writes the derived tables and reads them back with Arrow.
func checkTables(t *testing.T, res *analyze.Result, mem memory.Allocator) {
	t.Helper()
	dir := t.TempDir()
	if err := analyze.WriteTables(dir, res, mem); err != nil {
		t.Fatal(err)
	}
	var queue, edges int
	for _, inc := range res.Incidents {
		queue += len(inc.Queue)
		edges += len(inc.EdgeLog)
	}
	if edges == 0 {
		t.Error("no edges logged")
	}
	for name, want := range map[string]int{"incidents": len(res.Incidents), "queue": queue, "edges": edges} {
		path := filepath.Join(dir, name+".parquet")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := pqarrow.ReadTable(context.Background(), f, parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int(tbl.NumRows()) != want {
			t.Errorf("%s: %d rows, want %d", name, tbl.NumRows(), want)
		}
		tbl.Release()
	}
}

// Several recordings are one timeline; a time window keeps only what lies
// in it.
func TestAnalyzeSeveralDirectoriesAndWindows(t *testing.T) {
	a, b := "../fixtures/cron-vs-alter/recording", "../fixtures/row-contention/recording"
	res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 2 || res.Incidents[0].Start.After(res.Incidents[1].Start) {
		t.Fatalf("got %d incidents from two recordings, want 2 in start order", len(res.Incidents))
	}
	kinds := []string{res.Incidents[0].Kind, res.Incidents[1].Kind}
	first, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{a}})
	if err != nil {
		t.Fatal(err)
	}
	// A window that ends before the incident starts sees none of it.
	inc := first.Incidents[0]
	before, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{a}, Until: inc.Start.Add(-time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Incidents) != 0 {
		t.Errorf("window before the incident found %d incidents", len(before.Incidents))
	}
	// A window around it finds it, with the same root blocker.
	around, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{a}, Since: inc.Start.Add(-time.Second), Until: inc.End.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(around.Incidents) != 1 || around.Incidents[0].RootBlockers[0].PID != inc.RootBlockers[0].PID {
		t.Errorf("window around the incident: %+v", around.Incidents)
	}
	if kinds[0] == kinds[1] {
		t.Errorf("kinds %v: the DDL queue and the row-lock contention must differ", kinds)
	}
}
