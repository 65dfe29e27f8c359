package analyze_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

var benchHours = flag.Float64("bench-hours", 24, "hours of synthetic recording for BenchmarkAnalyze")

// synthetic writes a recording of a server with backends sessions: one full
// sample a second, and every hour a two-minute DDL lock queue sampled ten
// times a second, with a tenth of the backends behind the DDL. Segments
// rotate every 10 minutes, as the recorder's do.
func synthetic(b *testing.B, dir string, hours float64, backends int) (rows int64) {
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	end := t0.Add(time.Duration(hours * float64(time.Hour)))
	var j *recording.JournalWriter
	seal := func() {
		if j == nil {
			return
		}
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		if _, err := recording.Seal(dir, j.Path(), false); err != nil {
			b.Fatal(err)
		}
		j = nil
	}
	var segStart time.Time
	id := int64(0)
	db := int64(16384)
	for ts := t0; ts.Before(end); {
		if j == nil || ts.Sub(segStart) >= 10*time.Minute {
			seal()
			var err error
			j, err = recording.CreateJournal(dir, recording.Meta{Segment: recording.NewSegmentID(ts), Cluster: "bench",
				ApplicationName: "lockscope-capture", DatabaseOID: db, Odoo: true})
			if err != nil {
				b.Fatal(err)
			}
			segStart = ts
			rel := []recording.Relation{{Database: db, Relation: 16500, Schema: "public", Name: "stock_move", Kind: "r"},
				{Database: db, Relation: 16600, Schema: "public", Name: "sale_order", Kind: "r"}}
			if _, err := j.Append(&recording.Sample{Relations: rel}); err != nil {
				b.Fatal(err)
			}
		}
		inIncident := ts.Sub(ts.Truncate(time.Hour)) >= 30*time.Minute && ts.Sub(ts.Truncate(time.Hour)) < 32*time.Minute
		id++
		us := ts.UnixMicro()
		s := recording.Sample{Tick: &recording.Tick{SampleID: id, TS: us, ClientTS: us, Kind: recording.TickFull, Mode: "baseline", CapturePID: 99}}
		base := ts.Truncate(time.Hour).UnixMicro()
		for i := range backends {
			pid := int32(1000 + i)
			a := recording.Activity{SampleID: id, TS: us, DatID: db, DatName: "odoo", PID: pid, UseName: "odoo",
				ApplicationName: fmt.Sprintf("odoo-%d", 3000+i%32), BackendStart: base - int64(i)*1e6, State: "idle",
				Query: "SELECT id FROM sale_order WHERE id = $1", BackendType: "client backend"}
			vtx := fmt.Sprintf("%d/%d", i+3, i)
			s.Locks = append(s.Locks, recording.Lock{SampleID: id, TS: us, LockType: "virtualxid", VirtualXID: vtx, VirtualTransaction: vtx, PID: pid, Mode: "ExclusiveLock", Granted: true, FastPath: true})
			if i%3 == 0 { // in a transaction, reading sale_order
				a.State, a.XactStart = "idle in transaction", base
				s.Locks = append(s.Locks, recording.Lock{SampleID: id, TS: us, LockType: "relation", Database: &db, Relation: 16600, VirtualTransaction: vtx, PID: pid, Mode: "AccessShareLock", Granted: true, FastPath: true})
			}
			if inIncident {
				switch {
				case i == 0: // the cron holding stock_move
					a.State, a.XactStart, a.StateChange = "idle in transaction", base, base
					s.Locks = append(s.Locks, recording.Lock{SampleID: id, TS: us, LockType: "relation", Database: &db, Relation: 16500, VirtualTransaction: vtx, PID: pid, Mode: "RowExclusiveLock", Granted: true})
				case i == 1: // the ALTER
					a.State, a.WaitEventType, a.WaitEvent, a.Query = "active", "Lock", "relation", "ALTER TABLE stock_move ADD COLUMN x int"
					s.Locks = append(s.Locks, recording.Lock{SampleID: id, TS: us, LockType: "relation", Database: &db, Relation: 16500, VirtualTransaction: vtx, PID: pid, Mode: "AccessExclusiveLock", WaitStart: base + 30*60e6})
					s.Edges = append(s.Edges, recording.Edge{SampleID: id, TS: us, PID: pid, BackendStart: a.BackendStart, BlockingPID: 1000})
				case i%10 == 5: // workers behind it
					a.State, a.WaitEventType, a.WaitEvent, a.Query = "active", "Lock", "relation", "SELECT count(*) FROM stock_move"
					s.Locks = append(s.Locks, recording.Lock{SampleID: id, TS: us, LockType: "relation", Database: &db, Relation: 16500, VirtualTransaction: vtx, PID: pid, Mode: "AccessShareLock", WaitStart: base + 30*60e6 + int64(i)*1000})
					s.Edges = append(s.Edges, recording.Edge{SampleID: id, TS: us, PID: pid, BackendStart: a.BackendStart, BlockingPID: 1001})
				}
			}
			s.Activity = append(s.Activity, a)
		}
		rows += int64(len(s.Activity) + len(s.Locks) + len(s.Edges) + 1)
		if _, err := j.Append(&s); err != nil {
			b.Fatal(err)
		}
		if inIncident {
			ts = ts.Add(100 * time.Millisecond)
		} else {
			ts = ts.Add(time.Second)
		}
	}
	seal()
	return rows
}

// BenchmarkAnalyze analyses a synthetic recording (by default 24 hours of
// 300 backends: 1 Hz baseline, a 10 Hz incident every hour) and reports
// recorded rows per second and the peak heap. Generated once and kept in
// the user's cache directory; -bench-hours shortens it.
func BenchmarkAnalyze(b *testing.B) {
	// Cached in the user's own cache directory, never in a shared
	// temporary one another user could have planted it in.
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cache, "lockscope"), 0o700); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(cache, "lockscope", fmt.Sprintf("bench-analyze-%gh", *benchHours))
	rowsFile := filepath.Join(dir, "rows")
	var rows int64
	if data, err := os.ReadFile(rowsFile); err == nil {
		fmt.Sscan(string(data), &rows)
	} else {
		os.RemoveAll(dir)
		rows = synthetic(b, dir, *benchHours, 300)
		os.WriteFile(rowsFile, []byte(fmt.Sprint(rows)), 0o600)
	}
	b.ResetTimer()
	start := time.Now()
	peak := pgtest.PeakHeap(10*time.Millisecond, func() {
		for range b.N {
			res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{dir}})
			if err != nil {
				b.Fatal(err)
			}
			if want := int(*benchHours); len(res.Incidents) < want {
				b.Fatalf("found %d incidents, want %d", len(res.Incidents), want)
			}
		}
	})
	elapsed := time.Since(start)
	b.ReportMetric(float64(rows)*float64(b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
