package analyze

import (
	"testing"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// hotRow is one sample of row-lock waits on transaction xid held by
// holder, with waiters queued behind it.
func hotRow(id, ts int64, holder int32, xid int64, waiters ...int32) *snapshot {
	s := &snapshot{tick: recording.Tick{SampleID: id, TS: ts, Kind: recording.TickFull}}
	h := act(holder, "odoo-1", "active", "")
	h.XactStart = t0 - 1_000*xid // one start per transaction
	s.activity = append(s.activity, h)
	s.locks = append(s.locks, recording.Lock{LockType: "transactionid", TransactionID: xid, PID: holder, Mode: "ExclusiveLock", Granted: true})
	for _, w := range waiters {
		s.activity = append(s.activity, act(w, "odoo-2", "active", "Lock"))
		s.locks = append(s.locks, recording.Lock{LockType: "transactionid", TransactionID: xid, PID: w, Mode: "ShareLock", WaitStart: ts - 5_000})
	}
	return s
}

// Holders that change from sample to sample are churn: no root blocker,
// no session action; the same holder in the same transaction for a second
// is a persistent root and gets its action.
func TestChurnAndPersistentRoots(t *testing.T) {
	step := int64(100_000)
	tr := newTracker(time.Second, 0, nil, nil)
	for i := range 20 {
		holder := int32(10 + i%5) // a new holder (and transaction) every sample
		tr.observe(buildGraph(hotRow(int64(i+1), t0+int64(i)*step, holder, int64(900+i), 30, 31), len(tr.open) == 0))
	}
	tr.observe(buildGraph(&snapshot{tick: recording.Tick{SampleID: 99, TS: t0 + 20*step, Kind: recording.TickFull}}, false))
	incs := tr.finish(nil)
	if len(incs) != 1 {
		t.Fatalf("%d incidents", len(incs))
	}
	inc := incs[0]
	if inc.Kind != KindHotRow || len(inc.RootBlockers) != 0 || len(inc.Actions) != 0 {
		t.Errorf("churn: kind %q, roots %+v, actions %+v", inc.Kind, inc.RootBlockers, inc.Actions)
	}
	if inc.Contention == nil || !inc.Contention.Churn || inc.Contention.ChurnHolders != 5 {
		t.Errorf("contention %+v, want churn over 5 holders", inc.Contention)
	}

	tr = newTracker(time.Second, 0, nil, nil)
	for i := range 20 {
		tr.observe(buildGraph(hotRow(int64(i+1), t0+int64(i)*step, 10, 900, 30, 31), len(tr.open) == 0))
	}
	tr.observe(buildGraph(&snapshot{tick: recording.Tick{SampleID: 99, TS: t0 + 20*step, Kind: recording.TickFull}}, false))
	inc = tr.finish(nil)[0]
	if inc.Kind != KindRowLock || len(inc.RootBlockers) != 1 || inc.RootBlockers[0].PID != 10 || len(inc.Actions) != 1 || inc.Actions[0].Action != ActionCancel {
		t.Errorf("persistent: kind %q, roots %+v, actions %+v", inc.Kind, inc.RootBlockers, inc.Actions)
	}
}

// A prepared transaction's locks have no pid; the graph names it by its
// pg_prepared_xacts row and containment rolls it back by gid.
func TestPreparedTransactionRoot(t *testing.T) {
	prepared := t0 - 30e6
	snap := func(id, ts int64, waiting bool) *snapshot {
		s := &snapshot{tick: recording.Tick{SampleID: id, TS: ts, Kind: recording.TickFull}}
		if !waiting {
			return s
		}
		s.prepared = []recording.PreparedXact{{Transaction: 777, GID: "tm:o'neil", Prepared: prepared, Owner: "odoo", Database: "prod"}}
		s.activity = []recording.Activity{act(20, "odoo-2", "active", "Lock")}
		s.locks = []recording.Lock{
			{LockType: "transactionid", TransactionID: 777, VirtualTransaction: "7/12", Mode: "ExclusiveLock", Granted: true},
			{LockType: "relation", Database: i64(5), Relation: 16400, VirtualTransaction: "7/12", Mode: "RowExclusiveLock", Granted: true},
			{LockType: "transactionid", TransactionID: 777, PID: 20, Mode: "ShareLock", WaitStart: ts - 1e5},
		}
		s.edges = []recording.Edge{{PID: 20, BlockingPID: 0}}
		return s
	}
	tr := newTracker(time.Second, 0, map[int64]string{16400: "account_move"}, nil)
	for i := range 15 {
		tr.observe(buildGraph(snap(int64(i+1), t0+int64(i)*100_000, true), len(tr.open) == 0))
	}
	tr.observe(buildGraph(snap(99, t0+15*100_000, false), false))
	inc := tr.finish(nil)[0]
	if len(inc.RootBlockers) != 1 {
		t.Fatalf("roots %+v", inc.RootBlockers)
	}
	r := inc.RootBlockers[0]
	if r.PID != 0 || r.GID != "tm:o'neil" || r.User != "odoo" || r.Database != "prod" || r.Role != RolePrepared || r.TransactionAge != 30 {
		t.Errorf("root %+v", r)
	}
	a := inc.Actions[0]
	if a.Action != ActionRollbackPrepared || a.SQL != "ROLLBACK PREPARED 'tm:o''neil';" || a.Database != "prod" || a.GID != r.GID {
		t.Errorf("action %+v", a)
	}
	if r.Ended || r.Outcome == "terminated" {
		t.Errorf("a prepared transaction never had a backend to terminate: %+v", r)
	}
}

// When no sample shows the abort (both members finished before the next
// sample), the victim is not claimed; the member that began waiting first
// is named as the likely one.
func TestDeadlockVictimUnseen(t *testing.T) {
	cycle := func(id, ts int64) *snapshot {
		s := &snapshot{tick: recording.Tick{SampleID: id, TS: ts, Kind: recording.TickFull},
			activity: []recording.Activity{act(10, "a", "active", "Lock"), act(11, "b", "active", "Lock")},
			locks: []recording.Lock{
				{LockType: "transactionid", TransactionID: 900, PID: 10, Mode: "ExclusiveLock", Granted: true},
				{LockType: "transactionid", TransactionID: 901, PID: 11, Mode: "ExclusiveLock", Granted: true},
				{LockType: "transactionid", TransactionID: 901, PID: 10, Mode: "ShareLock", WaitStart: t0 - 2e6},
				{LockType: "transactionid", TransactionID: 900, PID: 11, Mode: "ShareLock", WaitStart: t0 - 1e6},
			}}
		return s
	}
	tr := newTracker(time.Second, 0, nil, nil)
	for i := range 12 {
		tr.observe(buildGraph(cycle(int64(i+1), t0+int64(i)*100_000), len(tr.open) == 0))
	}
	after := &snapshot{tick: recording.Tick{SampleID: 99, TS: t0 + 12*100_000, Kind: recording.TickFull},
		activity: []recording.Activity{act(10, "a", "idle", ""), act(11, "b", "idle", "")}}
	tr.observe(buildGraph(after, false))
	inc := tr.finish(nil)[0]
	d := inc.Deadlock
	if inc.Kind != KindDeadlock || d == nil || len(d.Members) != 2 || len(inc.Actions) != 0 {
		t.Fatalf("kind %q deadlock %+v actions %+v", inc.Kind, d, inc.Actions)
	}
	if d.Victim != 0 || d.LikelyVictim != 10 {
		t.Errorf("victim %d, likely %d (%s); want no claim and pid 10 likely", d.Victim, d.LikelyVictim, d.VictimEvidence)
	}
}

func TestAdvisoryKey(t *testing.T) {
	cases := []struct {
		classid, objid int64
		objsubid       int32
		want           string
	}{
		{0, 7340042, 1, "advisory lock key 7340042"},
		{1, 2, 1, "advisory lock key 4294967298"},
		{4294967295, 4294967295, 1, "advisory lock key -1"},
		{3, 4294967295, 2, "advisory lock key (3, -1)"},
	}
	for _, c := range cases {
		got := tag{locktype: "advisory", classid: c.classid, objid: c.objid, objsubid: c.objsubid}.describe(nil)
		if got != c.want {
			t.Errorf("advisory %d/%d/%d: %q, want %q", c.classid, c.objid, c.objsubid, got, c.want)
		}
	}
}

// An advisory lock held outside any transaction is session-level: a
// cancel cannot release it, so the action is terminate; a holder running
// a statement is cancelled first, with the session-level caveat.
func TestAdvisoryHolderActions(t *testing.T) {
	for _, c := range []struct {
		state, want string
	}{{"idle", ActionTerminate}, {"active", ActionCancel}, {"idle in transaction", ActionTerminate}} {
		snap := func(id, ts int64, waiting bool) *snapshot {
			s := &snapshot{tick: recording.Tick{SampleID: id, TS: ts, Kind: recording.TickFull}}
			if !waiting {
				return s
			}
			h := act(10, "jobs", c.state, "")
			if c.state == "idle" {
				h.XactStart = 0
			}
			s.activity = []recording.Activity{h, act(20, "jobs", "active", "Lock")}
			key := func(pid int32, mode string, granted bool) recording.Lock {
				return recording.Lock{LockType: "advisory", Database: i64(5), ClassID: i64(0), ObjID: i64(42), ObjSubID: func() *int32 { v := int32(1); return &v }(),
					PID: pid, Mode: mode, Granted: granted}
			}
			s.locks = []recording.Lock{key(10, "ExclusiveLock", true), key(20, "ExclusiveLock", false)}
			return s
		}
		tr := newTracker(time.Second, 0, nil, nil)
		for i := range 15 {
			tr.observe(buildGraph(snap(int64(i+1), t0+int64(i)*100_000, true), len(tr.open) == 0))
		}
		tr.observe(buildGraph(snap(99, t0+15*100_000, false), false))
		inc := tr.finish(nil)[0]
		if inc.Kind != KindAdvisory || len(inc.Actions) != 1 || inc.Actions[0].Action != c.want {
			t.Errorf("holder %s: kind %q actions %+v, want %s", c.state, inc.Kind, inc.Actions, c.want)
		}
	}
}
