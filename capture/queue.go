package capture

import (
	"slices"

	"github.com/lockscope/lockscope/capture/recording"
)

// waiter is a backend waiting for a heavyweight lock in one full sample.
type waiter struct {
	pid          int32
	backendStart int64
	queryStart   int64
	app, query   string
	// lockType, mode and relation are the lock it waits for (relation is
	// 0 unless lockType is "relation").
	lockType, mode string
	relation       int64
	// waitStart is pg_locks.waitstart (PostgreSQL 14+), 0 when unknown.
	waitStart int64
	blockers  []int32
}

// waitKey identifies one lock wait: a retried statement is a new wait.
type waitKey struct {
	pid                      int32
	backendStart, queryStart int64
}

func (w *waiter) key() waitKey { return waitKey{w.pid, w.backendStart, w.queryStart} }

// firstSeen holds, for each lock wait, the server time of the first sample
// that saw it: it stands in for pg_locks.waitstart where the server lacks
// it (PostgreSQL 13).
type firstSeen map[waitKey]int64

// next returns the first-seen times of q's waits: a wait seen before keeps
// its time, a new one gets q's; waits that ended are forgotten.
func (f firstSeen) next(q *lockQueue) firstSeen {
	seen := make(firstSeen, len(q.waiters))
	for _, w := range q.waiters {
		k := w.key()
		first, ok := f[k]
		if !ok {
			first = q.ts
		}
		seen[k] = first
	}
	return seen
}

// waitStart is when w's wait began: pg_locks.waitstart, or else the first
// sample that saw it.
func (f firstSeen) waitStart(w *waiter) int64 {
	if w.waitStart != 0 {
		return w.waitStart
	}
	return f[w.key()]
}

// lockQueue is the wait-for graph of one full sample, built from what the
// sample already holds: pg_blocking_pids for every lock waiter, and the
// ungranted pg_locks row that says what each waits for. It costs no query.
type lockQueue struct {
	ts      int64
	waiters map[int32]*waiter
	// behind lists, for each blocking pid, the pids it directly blocks.
	behind   map[int32][]int32
	activity map[int32]*recording.Activity
}

func newLockQueue(s *recording.Sample) *lockQueue {
	q := &lockQueue{ts: s.Tick.TS, waiters: map[int32]*waiter{}, behind: map[int32][]int32{},
		activity: make(map[int32]*recording.Activity, len(s.Activity))}
	for i := range s.Activity {
		q.activity[s.Activity[i].PID] = &s.Activity[i]
	}
	for i := range s.Locks {
		l := &s.Locks[i]
		if l.Granted || l.PID == 0 {
			continue
		}
		w := &waiter{pid: l.PID, lockType: l.LockType, mode: l.Mode, relation: l.Relation, waitStart: l.WaitStart}
		if l.LockType != "relation" {
			w.relation = 0
		}
		if a := q.activity[l.PID]; a != nil {
			w.backendStart, w.queryStart, w.app, w.query = a.BackendStart, a.QueryStart, a.ApplicationName, a.Query
		}
		q.waiters[l.PID] = w
	}
	for _, e := range s.Edges {
		if w := q.waiters[e.PID]; w != nil {
			w.blockers = append(w.blockers, e.BlockingPID)
		}
		q.behind[e.BlockingPID] = append(q.behind[e.BlockingPID], e.PID)
	}
	return q
}

// behindOf returns the sessions waiting on pid, directly or through
// others (everything that cannot proceed before pid does), each once.
func (q *lockQueue) behindOf(pid int32) []int32 {
	seen := map[int32]bool{pid: true}
	stack := []int32{pid}
	var out []int32
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, w := range q.behind[p] {
			if !seen[w] {
				seen[w] = true
				out = append(out, w)
				stack = append(stack, w)
			}
		}
	}
	return out
}

// queuedBehind counts the sessions waiting on pid, directly or through
// others.
func (q *lockQueue) queuedBehind(pid int32) int { return len(q.behindOf(pid)) }

// roots returns the root blockers, sorted: pids that block others and
// wait for nothing themselves (0 is a prepared transaction).
func (q *lockQueue) roots() []int32 {
	var out []int32
	for p := range q.behind {
		if q.waiters[p] == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// subtree returns the waiters behind root, sorted by pid.
func (q *lockQueue) subtree(root int32) []*waiter {
	var out []*waiter
	for _, p := range q.behindOf(root) {
		if w := q.waiters[p]; w != nil {
			out = append(out, w)
		}
	}
	sortWaiters(out)
	return out
}

// strongModes are the write-blocking relation lock modes (Share or
// stronger): a waiter for one of them stops every writer queued behind
// it, and with AccessExclusive every reader too.
var strongModes = map[string]bool{
	"ShareLock": true, "ShareRowExclusiveLock": true, "ExclusiveLock": true, "AccessExclusiveLock": true,
}

// isStrong reports whether w waits for a Share-or-stronger relation lock.
func (w *waiter) isStrong() bool { return w.lockType == "relation" && strongModes[w.mode] }
