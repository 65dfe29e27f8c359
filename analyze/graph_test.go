package analyze

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lockscope/lockscope/capture/recording"
)

func TestConflictMatrix(t *testing.T) {
	// Requested mode → held modes it conflicts with (PostgreSQL docs).
	want := map[string][]string{
		"AccessShareLock":          {"AccessExclusiveLock"},
		"RowShareLock":             {"ExclusiveLock", "AccessExclusiveLock"},
		"RowExclusiveLock":         {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"},
		"ShareUpdateExclusiveLock": {"ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"},
		"ShareLock":                {"RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"},
		"ShareRowExclusiveLock":    {"RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"},
		"ExclusiveLock":            {"RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"},
		"AccessExclusiveLock":      modeNames[:],
	}
	for req, held := range want {
		var got []string
		for _, h := range modeNames {
			if Conflicts(req, h) {
				got = append(got, h)
			}
		}
		if diff := cmp.Diff(held, got); diff != "" {
			t.Errorf("%s conflicts (-want +got):\n%s", req, diff)
		}
	}
	if Conflicts("SIReadLock", "AccessExclusiveLock") {
		t.Error("a mode outside the matrix conflicts")
	}
}

func i64(v int64) *int64 { return &v }

const t0 = int64(1_795_500_000_000_000)

func act(pid int32, app, state, waitType string) recording.Activity {
	return recording.Activity{PID: pid, BackendStart: t0 - int64(pid)*1000, ApplicationName: app, State: state, WaitEventType: waitType, XactStart: t0 - 5e6}
}

func bk(pid int32) Backend { return Backend{pid, t0 - int64(pid)*1000} }

// A row-lock wait is on the holder's transactionid, whose rows have a NULL
// database: an equality join would lose it.
func TestRowLockWaitResolvesToTransactionHolder(t *testing.T) {
	s := &snapshot{
		tick:     recording.Tick{SampleID: 1, TS: t0, Kind: recording.TickFull, CapturePID: 99},
		activity: []recording.Activity{act(10, "odoo-1", "idle in transaction", ""), act(11, "odoo-2", "active", "Lock"), act(99, "lockscope-capture", "active", "")},
		locks: []recording.Lock{
			{LockType: "transactionid", TransactionID: 900, PID: 10, Mode: "ExclusiveLock", Granted: true},
			{LockType: "transactionid", TransactionID: 900, PID: 11, Mode: "ShareLock", Granted: false, WaitStart: t0 - 2e6},
			// Same number, but a relation in another database: no join.
			{LockType: "relation", Database: i64(0), Relation: 900, PID: 10, Mode: "AccessExclusiveLock", Granted: true},
			{LockType: "relation", Database: i64(5), Relation: 16400, PID: 99, Mode: "AccessShareLock", Granted: true},
		},
		recorderApp: "lockscope-capture",
	}
	g := buildGraph(s, false)
	want := []WaitEdge{{Waiter: bk(11), Blocker: bk(10), Kind: EdgeHard}}
	if diff := cmp.Diff(want, g.edges); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if _, ok := g.backends[Backend{99, t0 - 99000}]; ok {
		t.Error("the recorder's own session is in the graph")
	}
	if diff := cmp.Diff([]Backend{bk(10)}, g.roots()); diff != "" {
		t.Errorf("roots (-want +got):\n%s", diff)
	}
}

// Without pg_blocking_pids, soft edges come from waitstart order and the
// conflict matrix, and say they are inferred; an observed edge upgrades.
func TestSoftEdgesInferredAndObserved(t *testing.T) {
	rel := func(pid int32, mode string, granted bool, waitStart int64) recording.Lock {
		return recording.Lock{LockType: "relation", Database: i64(5), Relation: 16400, PID: pid, Mode: mode, Granted: granted, WaitStart: waitStart}
	}
	s := &snapshot{
		tick:     recording.Tick{SampleID: 1, TS: t0, Kind: recording.TickFull},
		activity: []recording.Activity{act(10, "cron", "idle in transaction", ""), act(20, "upgrade", "active", "Lock"), act(30, "w1", "active", "Lock"), act(31, "w2", "active", "Lock")},
		locks: []recording.Lock{
			rel(10, "RowExclusiveLock", true, 0),
			rel(20, "AccessExclusiveLock", false, t0-3e6),
			rel(30, "AccessShareLock", false, t0-2e6),
			rel(31, "AccessShareLock", false, t0-1e6),
		},
		edges: []recording.Edge{{PID: 30, BlockingPID: 20}},
	}
	g := buildGraph(s, false)
	want := []WaitEdge{
		{Waiter: bk(20), Blocker: bk(10), Kind: EdgeHard},
		{Waiter: bk(30), Blocker: bk(20), Kind: EdgeSoftObserved, Observed: true},
		{Waiter: bk(31), Blocker: bk(20), Kind: EdgeSoftInferred},
	}
	if diff := cmp.Diff(want, g.edges); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Backend{bk(20), bk(30), bk(31)}, g.behind(bk(10))); diff != "" {
		t.Errorf("behind the root (-want +got):\n%s", diff)
	}
}

// rowLockSnapshot is one sample of a holder and n waiters on its row.
func rowLockSnapshot(id int64, ts int64, n int) *snapshot {
	s := &snapshot{tick: recording.Tick{SampleID: id, TS: ts, Kind: recording.TickFull},
		activity: []recording.Activity{act(10, "odoo-1", "idle in transaction", "")},
		locks:    []recording.Lock{{LockType: "transactionid", TransactionID: 900, PID: 10, Mode: "ExclusiveLock", Granted: true}}}
	for i := range n {
		pid := int32(20 + i)
		s.activity = append(s.activity, act(pid, "odoo-2", "active", "Lock"))
		s.locks = append(s.locks,
			recording.Lock{LockType: "relation", Database: i64(5), Relation: 16400, PID: pid, Mode: "RowExclusiveLock", Granted: true},
			recording.Lock{LockType: "transactionid", TransactionID: 900, PID: pid, Mode: "ShareLock", WaitStart: t0})
	}
	return s
}

func TestTrackerRowLockIncidentGapAndShortWaits(t *testing.T) {
	gap := Gap{Start: time.UnixMicro(t0 + 1_200_000).UTC(), End: time.UnixMicro(t0 + 1_800_000).UTC(), Reason: "server restart"}
	tr := newTracker(time.Second, 0, map[int64]string{16400: "sale_order"}, []Gap{gap})
	step := int64(250_000)
	// 3 s of two waiters, with a gap inside; then drained; then a 0.5 s
	// blip that is too short to be an incident.
	ts := t0
	for i := range 13 {
		if ts > gap.Start.UnixMicro() && ts < gap.End.UnixMicro() {
			ts += step
			continue
		}
		tr.observe(buildGraph(rowLockSnapshot(int64(i+1), ts, 2), len(tr.open) == 0))
		ts += step
	}
	tr.observe(buildGraph(rowLockSnapshot(100, ts, 0), len(tr.open) == 0))
	for i := range 2 {
		ts += step
		tr.observe(buildGraph(rowLockSnapshot(int64(200+i), ts, 1), len(tr.open) == 0))
	}
	ts += step
	tr.observe(buildGraph(rowLockSnapshot(300, ts, 0), len(tr.open) == 0))
	incs := tr.finish(nil)
	if len(incs) != 1 {
		t.Fatalf("got %d incidents, want 1 (the blip is too short): %+v", len(incs), incs)
	}
	inc := incs[0]
	if inc.Kind != KindRowLock || inc.DDL != nil {
		t.Errorf("kind %q ddl %v: want row-lock contention without DDL", inc.Kind, inc.DDL)
	}
	if inc.PeakWaiters != 2 || len(inc.RootBlockers) != 1 || inc.RootBlockers[0].PID != 10 {
		t.Errorf("peak %d, roots %+v", inc.PeakWaiters, inc.RootBlockers)
	}
	// Two waiters for 3.25 s, less the 0.6 s gap that is not counted.
	if want := 2 * (3.25 - 0.6); inc.WaiterSeconds < want-0.01 || inc.WaiterSeconds > want+0.01 {
		t.Errorf("waiter-seconds %.3f, want %.3f", inc.WaiterSeconds, want)
	}
	if len(inc.Gaps) != 1 || !inc.Gaps[0].Start.Equal(gap.Start) {
		t.Errorf("gaps inside the incident: %+v", inc.Gaps)
	}
	if inc.RootBlockers[0].Ended || inc.RootBlockers[0].Gone == nil {
		t.Errorf("root blocker stayed connected and stopped blocking: %+v", inc.RootBlockers[0])
	}
}

func TestQueueGrowthRate(t *testing.T) {
	rels := map[int64]string{16400: "stock_move"}
	tr := newTracker(time.Second, 0, rels, nil)
	snap := func(id int64, ts int64, n int) *snapshot {
		s := &snapshot{tick: recording.Tick{SampleID: id, TS: ts, Kind: recording.TickFull},
			activity: []recording.Activity{act(10, "mig", "idle in transaction", "")},
			locks:    []recording.Lock{{LockType: "relation", Database: i64(5), Relation: 16400, PID: 10, Mode: "AccessExclusiveLock", Granted: true}}}
		for i := range n {
			pid := int32(20 + i)
			s.activity = append(s.activity, act(pid, "w", "active", "Lock"))
			s.locks = append(s.locks, recording.Lock{LockType: "relation", Database: i64(5), Relation: 16400, PID: pid, Mode: "AccessShareLock", WaitStart: ts})
		}
		return s
	}
	// 1, 2, 3, 3, 3 waiters, a sample every 250 ms, then drained.
	for i, n := range []int{1, 2, 3, 3, 3, 3, 3, 0} {
		tr.observe(buildGraph(snap(int64(i+1), t0+int64(i)*250_000, n), false))
	}
	incs := tr.finish(nil)
	if len(incs) != 1 {
		t.Fatalf("got %d incidents", len(incs))
	}
	var rates []float64
	for _, q := range incs[0].Queue {
		rates = append(rates, q.Rate)
	}
	// The drained sample is a zero: the queue emptied at -3 per 250 ms.
	if diff := cmp.Diff([]float64{0, 4, 4, 0, 0, 0, 0, -12}, rates); diff != "" {
		t.Errorf("queue growth rates (-want +got):\n%s", diff)
	}
	q := incs[0].Queue
	if !(q[2].RateSmoothed > q[1].RateSmoothed && q[1].RateSmoothed > 0 && q[6].RateSmoothed < q[3].RateSmoothed) {
		t.Errorf("smoothed rates do not rise then decay: %+v", q)
	}
	if incs[0].Kind != KindDDLLockQueue || incs[0].DDL == nil || incs[0].DDL.Outcome != OutcomeHeld {
		t.Errorf("an AccessExclusiveLock held against readers: kind %s ddl %+v", incs[0].Kind, incs[0].DDL)
	}
}
