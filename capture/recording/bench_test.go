package recording_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// syntheticSample is one full sample of a busy server: backends idle in
// transaction with a few locks each, a tenth waiting behind a DDL.
func syntheticSample(id int64, ts int64, backends int) recording.Sample {
	base := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC).UnixMicro()
	s := recording.Sample{Tick: &recording.Tick{SampleID: id, TS: ts, ClientTS: ts, Kind: recording.TickFull, Mode: "burst", LockWaiters: int32(backends / 10)}}
	for i := range backends {
		pid := int32(10000 + i)
		a := recording.Activity{SampleID: id, TS: ts, DatID: 16384, DatName: "odoo", PID: pid, UseSysID: 10, UseName: "odoo",
			ApplicationName: fmt.Sprintf("odoo-%d", 4000+i%40), ClientAddr: "10.0.0.7", ClientPort: int32(40000 + i),
			BackendStart: base - 3_600_000_000 + int64(i)*1000, XactStart: base - 60_000_000 + int64(i), QueryStart: base - 50_000_000 + int64(i),
			StateChange: base - 50_000_000 + int64(i), State: "idle in transaction", BackendXmin: 7000,
			Query: fmt.Sprintf("SELECT \"sale_order\".\"id\", \"sale_order\".\"name\" FROM \"sale_order\" WHERE \"sale_order\".\"id\" IN (%d)", i), BackendType: "client backend"}
		if i%10 == 0 {
			a.State, a.WaitEventType, a.WaitEvent = "active", "Lock", "relation"
			a.Query = "SELECT count(*) FROM stock_move"
			s.Edges = append(s.Edges, recording.Edge{SampleID: id, TS: ts, PID: pid, BackendStart: a.BackendStart, BlockingPID: 9999})
		}
		s.Activity = append(s.Activity, a)
		db := int64(16384)
		vtx := fmt.Sprintf("%d/%d", 3+i, 100+i)
		s.Locks = append(s.Locks,
			recording.Lock{SampleID: id, TS: ts, LockType: "virtualxid", VirtualXID: vtx, VirtualTransaction: vtx, PID: pid, Mode: "ExclusiveLock", Granted: true, FastPath: true},
			recording.Lock{SampleID: id, TS: ts, LockType: "relation", Database: &db, Relation: 16500, VirtualTransaction: vtx, PID: pid, Mode: "AccessShareLock", Granted: true, FastPath: true},
			recording.Lock{SampleID: id, TS: ts, LockType: "relation", Database: &db, Relation: 16501, VirtualTransaction: vtx, PID: pid, Mode: "AccessShareLock", Granted: true, FastPath: true},
			recording.Lock{SampleID: id, TS: ts, LockType: "relation", Database: &db, Relation: 16502 + int64(i%3), VirtualTransaction: vtx, PID: pid, Mode: "RowExclusiveLock", Granted: i%10 != 0, WaitStart: base - 1000})
	}
	return s
}

// BenchmarkSeal seals a journal of 200 full samples of 500 backends and
// reports bytes per sample on disk, the journal's bytes per sample, and the
// peak heap while sealing.
func BenchmarkSeal(b *testing.B) {
	const backends, samples = 500, 200
	dir := b.TempDir()
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	var journalBytes, diskBytes int64
	var peak uint64
	for n := range b.N {
		meta := recording.Meta{Segment: recording.NewSegmentID(t0.Add(time.Duration(n) * time.Hour)), Cluster: "bench"}
		j, err := recording.CreateJournal(dir, meta)
		if err != nil {
			b.Fatal(err)
		}
		for i := range samples {
			s := syntheticSample(int64(n*samples+i+1), t0.Add(time.Duration(i)*250*time.Millisecond).UnixMicro(), backends)
			if _, err := j.Append(&s); err != nil {
				b.Fatal(err)
			}
		}
		journalBytes = j.Size()
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var res recording.SealResult
		heap := pgtest.PeakHeap(2*time.Millisecond, func() { res, err = recording.Seal(dir, j.Path(), false) })
		if heap > base.HeapInuse {
			peak = max(peak, heap-base.HeapInuse)
		}
		if err != nil {
			b.Fatal(err)
		}
		diskBytes = res.Segment.Bytes
		for _, p := range res.Segment.Files {
			os.Remove(p)
		}
	}
	b.ReportMetric(float64(diskBytes)/samples, "bytes/sample")
	b.ReportMetric(float64(journalBytes)/samples, "journal-bytes/sample")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
