package capture

import (
	"slices"
	"sync"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// Window collects what the samples of a capture showed, for the summary a
// wrapped command's capture prints when it ends: the peak of lock waiters,
// the longest wait, each root blocker with the DDL queued behind it, and
// the guard's cancels. It reads only samples already taken. Safe for
// concurrent use; a nil *Window collects nothing.
type Window struct {
	mu        sync.Mutex
	s         WindowSummary
	roots     map[waitKey]*WindowIncident
	order     []waitKey
	firstSeen firstSeen
}

// WindowSummary is what a Window saw.
type WindowSummary struct {
	Start, End  time.Time
	Samples     int
	FullSamples int
	PeakWaiters int
	PeakAt      time.Time
	// Longest is the longest lock wait seen (nil when nothing waited).
	Longest *WaitSeen
	// Incidents are the root blockers seen, in the order first seen.
	Incidents []WindowIncident
	// Cancels are the guard's cancels.
	Cancels []GuardCancel
}

// WaitSeen is a session seen waiting for a lock.
type WaitSeen struct {
	PID            int32
	App, Query     string
	Mode, Relation string
	Waited         time.Duration
	// Behind is the most sessions seen queued behind it.
	Behind int
}

// WindowIncident is one root blocker and what queued behind it.
type WindowIncident struct {
	RootPID          int32
	RootApp          string
	RootState        string
	RootQuery        string
	First, Last      time.Time
	PeakBehind       int
	LongestWaitBelow time.Duration
	// DDL is the Share-or-stronger relation lock waiter behind the root
	// with the most sessions queued behind it (nil when none was seen).
	DDL *WaitSeen
}

// NewWindow returns an empty Window.
func NewWindow() *Window {
	return &Window{roots: map[waitKey]*WindowIncident{}, firstSeen: firstSeen{}}
}

// Summary returns a copy of what the window has seen so far.
func (w *Window) Summary() WindowSummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.s
	if s.Longest != nil {
		l := *s.Longest
		s.Longest = &l
	}
	s.Incidents = nil
	for _, k := range w.order {
		inc := *w.roots[k]
		if inc.DDL != nil {
			d := *inc.DDL
			inc.DDL = &d
		}
		s.Incidents = append(s.Incidents, inc)
	}
	s.Cancels = slices.Clone(s.Cancels)
	return s
}

// observe takes in one written sample; q is nil for a probe.
func (w *Window) observe(t *recording.Tick, q *lockQueue, relName func(int64) string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ts := time.UnixMicro(t.TS).UTC()
	if w.s.Samples == 0 {
		w.s.Start = ts
	}
	w.s.End = ts
	w.s.Samples++
	if int(t.LockWaiters) > w.s.PeakWaiters {
		w.s.PeakWaiters, w.s.PeakAt = int(t.LockWaiters), ts
	}
	if q == nil {
		return
	}
	w.s.FullSamples++
	w.firstSeen = w.firstSeen.next(q)
	waited := map[int32]time.Duration{}
	for _, x := range q.waiters {
		start := w.firstSeen.waitStart(x)
		d := time.Duration(q.ts-start) * time.Microsecond
		waited[x.pid] = d
		if w.s.Longest == nil || d > w.s.Longest.Waited {
			w.s.Longest = &WaitSeen{PID: x.pid, App: x.app, Query: x.query, Mode: x.mode, Relation: target(x, relName), Waited: d}
		}
	}
	for _, root := range q.roots() {
		var k waitKey
		inc := &WindowIncident{RootPID: root, First: ts}
		if a := q.activity[root]; a != nil {
			k = waitKey{root, a.BackendStart, 0}
			inc.RootApp, inc.RootState, inc.RootQuery = a.ApplicationName, a.State, a.Query
		} else {
			k = waitKey{pid: root}
		}
		if old := w.roots[k]; old != nil {
			inc = old
		} else {
			w.roots[k] = inc
			w.order = append(w.order, k)
		}
		inc.Last = ts
		below := q.subtree(root)
		inc.PeakBehind = max(inc.PeakBehind, len(below))
		for _, x := range below {
			inc.LongestWaitBelow = max(inc.LongestWaitBelow, waited[x.pid])
			if !x.isStrong() {
				continue
			}
			behind := q.queuedBehind(x.pid)
			switch {
			case inc.DDL == nil || (inc.DDL.PID != x.pid && behind > inc.DDL.Behind):
				inc.DDL = &WaitSeen{PID: x.pid, App: x.app, Query: x.query, Mode: x.mode, Relation: target(x, relName),
					Waited: waited[x.pid], Behind: behind}
			case inc.DDL.PID == x.pid:
				inc.DDL.Waited = max(inc.DDL.Waited, waited[x.pid])
				inc.DDL.Behind = max(inc.DDL.Behind, behind)
			}
		}
	}
}

// guardCancel records one of the guard's cancels.
func (w *Window) guardCancel(c GuardCancel) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.s.Cancels = append(w.s.Cancels, c)
}

// target names what a waiter waits for.
func target(x *waiter, relName func(int64) string) string {
	if x.lockType == "relation" && relName != nil {
		return relName(x.relation)
	}
	return x.lockType
}
