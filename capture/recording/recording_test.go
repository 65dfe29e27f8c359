package recording

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func testMeta(t0 time.Time) Meta {
	return Meta{
		Segment: NewSegmentID(t0), Cluster: "7312345678901234567", ServerVersion: "15.18",
		ServerVersionNum: 150018, Host: "127.0.0.1", Port: 5432, Database: "odoo", User: "lockscope",
		ProbeIntervalMS: 250, FullIntervalMS: 5000, BurstIntervalMS: 250, QueryMaxBytes: 1024,
		AbsentColumns: []string{},
	}
}

// testSample builds a sample with every kind of value, including NULLs and
// zeros that must stay distinct.
func testSample(id int64, ts int64, waiters int32) Sample {
	return Sample{
		Tick: &Tick{SampleID: id, TS: ts, ClientTS: ts + 10, Kind: TickFull, Mode: "burst", LockWaiters: waiters,
			ActivityRows: 2, LockRows: 2, EdgeRows: 1, QueryMicros: 900, ClientMicros: 120, CapturePID: 42},
		Activity: []Activity{
			{SampleID: id, TS: ts, DatID: 16384, DatName: "odoo", PID: 100, UseName: "odoo", ApplicationName: "odoo-1234",
				ClientAddr: "10.0.0.5", ClientPort: 51234, BackendStart: ts - 1e9, XactStart: ts - 5e8, QueryStart: ts - 5e8,
				StateChange: ts - 4e8, State: "idle in transaction", BackendXID: 731, Query: "SELECT 1 FROM ir_cron FOR NO KEY UPDATE SKIP LOCKED",
				BackendType: "client backend"},
			{SampleID: id, TS: ts, DatID: 16384, DatName: "odoo", PID: 101, LeaderPID: 0, ApplicationName: "odoo-upgrade",
				WaitEventType: "Lock", WaitEvent: "relation", State: "active", Query: "ALTER TABLE stock_move ADD COLUMN x int",
				BackendType: "client backend", BackendStart: ts - 2e9},
		},
		Locks: []Lock{
			{SampleID: id, TS: ts, LockType: "relation", Database: ptr(int64(16384)), Relation: 16500, VirtualTransaction: "3/7",
				PID: 100, Mode: "RowExclusiveLock", Granted: true, FastPath: true},
			{SampleID: id, TS: ts, LockType: "relation", Database: ptr(int64(0)), Relation: 1262, Page: ptr(int32(0)),
				ClassID: ptr(int64(0)), ObjID: ptr(int64(0)), ObjSubID: ptr(int32(0)), VirtualTransaction: "4/2",
				PID: 101, Mode: "AccessExclusiveLock", Granted: false, WaitStart: ts - 3e8},
			{SampleID: id, TS: ts, LockType: "transactionid", TransactionID: 731, VirtualTransaction: "-1/731", Mode: "ExclusiveLock", Granted: true},
		},
		Edges:     []Edge{{SampleID: id, TS: ts, PID: 101, BackendStart: ts - 2e9, BlockingPID: 100}},
		Relations: []Relation{{SampleID: id, Database: 16384, Relation: 16500, Schema: "public", Name: "stock_move", Kind: "r"}},
		Events:    []Event{{TS: ts, Kind: EventWarning, Message: "query text hidden"}},
		PgBouncerPools: []PgBouncerPool{{SampleID: id, TS: ts, Database: "odoo", User: "odoo", ClActive: 30, ClWaiting: 12,
			SvActive: 5, MaxWaitMicros: 2_500_000, PoolMode: "transaction"}},
		PgBouncerServers: []PgBouncerServer{{SampleID: id, TS: ts, Type: "S", User: "odoo", Database: "odoo", State: "active",
			Addr: "127.0.0.1", Port: 5432, RemotePID: 100}},
		OdooModules:   []OdooModule{{SampleID: id, TS: ts, Name: "stock", State: "to upgrade"}},
		PreparedXacts: []PreparedXact{{SampleID: id, TS: ts, Transaction: 4242, GID: "tm:42", Prepared: ts - 9_000_000, Owner: "odoo", Database: "odoo"}},
	}
}

func writeJournal(t *testing.T, dir string, meta Meta, samples []Sample) string {
	t.Helper()
	w, err := CreateJournal(dir, meta)
	if err != nil {
		t.Fatal(err)
	}
	for i := range samples {
		if _, err := w.Append(&samples[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path()
}

func readAll(t *testing.T, seg Segment) Sample {
	t.Helper()
	var got Sample
	ticks := mustRead[Tick](t, seg, TableTicks)
	if len(ticks) != 1 {
		t.Fatalf("ticks: got %d rows, want 1", len(ticks))
	}
	got.Tick = &ticks[0]
	got.Activity = mustRead[Activity](t, seg, TableActivity)
	got.Locks = mustRead[Lock](t, seg, TableLocks)
	got.Edges = mustRead[Edge](t, seg, TableEdges)
	got.Relations = mustRead[Relation](t, seg, TableRelations)
	got.Events = mustRead[Event](t, seg, TableEvents)
	got.PgBouncerPools = mustRead[PgBouncerPool](t, seg, TablePgBouncerPools)
	got.PgBouncerServers = mustRead[PgBouncerServer](t, seg, TablePgBouncerServers)
	got.OdooModules = mustRead[OdooModule](t, seg, TableOdooModules)
	got.PreparedXacts = mustRead[PreparedXact](t, seg, TablePreparedXacts)
	return got
}

func mustRead[T any](t *testing.T, seg Segment, table string) []T {
	t.Helper()
	path, ok := seg.Files[table]
	if !ok {
		t.Fatalf("segment has no %s file", table)
	}
	rows, meta, err := ReadTable[T](path)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Segment != seg.Meta.Segment {
		t.Errorf("%s: segment metadata %q, want %q", table, meta.Segment, seg.Meta.Segment)
	}
	return rows
}

func TestJournalSealRoundTrip(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	meta := testMeta(t0)
	want := testSample(1, t0.UnixMicro(), 1)
	journal := writeJournal(t, dir, meta, []Sample{want})

	res, err := Seal(dir, journal, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Empty || res.Damage != "" {
		t.Fatalf("seal: empty=%v damage=%q", res.Empty, res.Damage)
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal still present after seal: %v", err)
	}
	got := readAll(t, res.Segment)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if res.Segment.Meta.Ticks != 1 || res.Segment.Meta.LockWaitTicks != 1 || res.Segment.Meta.StartUS != t0.UnixMicro() {
		t.Errorf("summary: %+v", res.Segment.Meta)
	}
	wantPath := filepath.Join(dir, "locks", "cluster=7312345678901234567", "date=2026-11-24", "20261124T093000.000000Z.parquet")
	if res.Segment.Files[TableLocks] != wantPath {
		t.Errorf("locks file: got %s, want %s", res.Segment.Files[TableLocks], wantPath)
	}
	for table, p := range res.Segment.Files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != FileMode {
			t.Errorf("%s: mode %v, want %v", table, fi.Mode().Perm(), FileMode)
		}
	}
	segs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].Meta.Segment != meta.Segment || len(segs[0].Files) != len(tables) {
		t.Errorf("List: got %+v", segs)
	}
}

func TestSealTornJournalKeepsWholeRecords(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	var samples []Sample
	for i := range 5 {
		samples = append(samples, testSample(int64(i+1), t0.Add(time.Duration(i)*time.Second).UnixMicro(), 0))
	}
	journal := writeJournal(t, dir, testMeta(t0), samples)
	fi, err := os.Stat(journal)
	if err != nil {
		t.Fatal(err)
	}
	// A kill during the last write leaves part of the record.
	if err := os.Truncate(journal, fi.Size()-7); err != nil {
		t.Fatal(err)
	}
	results, err := Recover(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 {
		t.Fatalf("Recover sealed %d journals, want 1", len(results))
	}
	res := results[0]
	if res.Damage == "" {
		t.Error("torn record not reported")
	}
	if !res.Segment.Meta.Recovered {
		t.Error("segment not marked recovered")
	}
	ticks := mustRead[Tick](t, res.Segment, TableTicks)
	if len(ticks) != 4 {
		t.Errorf("ticks after a torn last record: got %d, want 4", len(ticks))
	}
}

func TestSealRejectsForeignFile(t *testing.T) {
	dir := t.TempDir()
	path := JournalPath(dir, NewSegmentID(time.Now()))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("PAR1 not a journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Seal(dir, path, true); !errors.Is(err, ErrJournalDamaged) {
		t.Errorf("Seal of a foreign file: got %v, want ErrJournalDamaged", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("a journal that could not be sealed must stay: %v", err)
	}
}

func TestOpenTableFileErrors(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	res, err := Seal(dir, writeJournal(t, dir, testMeta(t0), []Sample{testSample(1, t0.UnixMicro(), 0)}), false)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(res.Segment.Files[TableActivity])
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)/2],
		"text":      []byte("hello, world\n"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.parquet")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenTableFile(p)
			if !errors.Is(err, ErrNotRecording) {
				t.Fatalf("got %v, want ErrNotRecording", err)
			}
		})
	}
	if _, _, err := ReadTable[Lock](res.Segment.Files[TableActivity]); err == nil {
		t.Error("reading an activity file as locks succeeded")
	}
}

func TestLockExcludesSecondHolder(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := LockDir(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("second Lock: got %v, want ErrLocked", err)
	}
}
