package analyze

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// finish closes the tracker at the end of the recording and returns the
// incidents that lasted at least minDuration, in start order.
func (t *tracker) finish(pendingModules []string) []Incident {
	for _, inc := range t.open {
		for _, d := range inc.ddls {
			if d.waiting {
				d.outcome = OutcomeStillWaiting
				d.evidence = "still waiting for its lock when the recording ends"
			}
		}
	}
	all := append(t.done, t.open...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].start < all[j].start })
	var out []Incident
	for _, inc := range all {
		if time.Duration(inc.lastSeen-inc.start)*time.Microsecond < t.minDuration {
			continue
		}
		inc.ops = t.opsFor(inc)
		x := inc.export(len(out) + 1)
		x.Runbook = runbook(&x, inc, pendingModules)
		out = append(out, x)
	}
	return out
}

func (inc *incState) export(id int) Incident {
	x := Incident{ID: id, Start: time.UnixMicro(inc.start).UTC(), PeakAt: time.UnixMicro(inc.peakAt).UTC(),
		PeakWaiters: inc.peak, WaiterSeconds: round3(inc.waiterSec), Edges: inc.edgeKinds, Samples: inc.samples,
		Queue: inc.queue, Gaps: inc.gaps, Relations: []string{}, RootBlockers: []RootBlocker{}, Waiters: []Session{}}
	if x.Gaps == nil {
		x.Gaps = []Gap{}
	}
	last := inc.lastSeen
	if inc.end != 0 {
		e := time.UnixMicro(inc.end).UTC()
		x.End = &e
		last = inc.end
	}
	x.Duration = round3(float64(last-inc.start) / 1e6)
	x.Kind = inc.kind()
	for r := range inc.relations {
		x.Relations = append(x.Relations, r)
	}
	sort.Strings(x.Relations)
	for _, r := range sortedRoots(inc.roots) {
		if x.Kind == KindDeadlock || !r.persistent() {
			// A deadlock has no root; a transient holder of churn is
			// counted in the contention summary, not named as a root.
			continue
		}
		x.RootBlockers = append(x.RootBlockers, inc.exportRoot(r))
	}
	sort.SliceStable(x.RootBlockers, func(i, j int) bool { return x.RootBlockers[i].WaiterSeconds > x.RootBlockers[j].WaiterSeconds })
	for _, w := range sortedWaiters(inc.waiters) {
		s := w.info
		s.WaitedFor = round3(w.waited)
		x.Waiters = append(x.Waiters, s)
	}
	if d := principalDDL(inc.ddls); d != nil {
		x.DDL = inc.exportDDL(d)
	}
	x.Waiting = inc.waiting()
	if inc.cycle != nil {
		x.Deadlock = inc.cycle.export()
	}
	x.Contention = inc.contention(x.Kind)
	x.Actions, x.Protected = containment(&x, inc)
	x.Advice = advice(&x)
	x.WhatIf = whatIf(&x, inc)
	x.EdgeLog = inc.edgeLog
	x.Operator = inc.ops
	if x.Operator == nil {
		x.Operator = []OperatorAction{}
	}
	x.EndedBy, x.Ending = endedBy(&x)
	x.Applications = inc.applications(x.Waiters)
	return x
}

// exportRoot projects a persistent root blocker into the model.
func (inc *incState) exportRoot(r *rootState) RootBlocker {
	rb := RootBlocker{Session: r.info, TransactionAge: round3(r.xactAge), Locks: r.locks, WaiterSeconds: round3(r.waiterSec),
		PeakBehind: r.peakBehind, FirstSeen: time.UnixMicro(r.first).UTC(), LastSeen: time.UnixMicro(r.last).UTC(), Ended: r.ended,
		Persistent: true}
	if rb.Locks == nil {
		rb.Locks = []HeldLock{}
	}
	if r.prepared {
		rb.Ended = false // it never had a backend
	}
	rb.Ending, rb.EndingEvidence = r.ending, r.evidence
	if r.gone == 0 {
		rb.Ending, rb.EndingEvidence = EndingStillBlocking, "still blocking when the recording ends"
	}
	rb.Outcome = rootOutcome(rb.Ending)
	if r.gone != 0 {
		g := time.UnixMicro(r.gone).UTC()
		rb.Gone = &g
		if inc.end != 0 {
			d := round3(float64(inc.end-r.gone) / 1e6)
			rb.DrainSeconds = &d
		}
	}
	return rb
}

// exportDDL projects the incident's principal DDL into the model: every
// attempt, and the outcome over all of them.
func (inc *incState) exportDDL(d *ddlState) *DDL {
	out := &DDL{PID: d.backend.PID, BackendStart: time.UnixMicro(d.backend.Start).UTC(), ApplicationName: d.info.ApplicationName,
		Query: d.info.Query, Relation: d.relation, Mode: d.mode, Waited: round3(d.waited), Attempts: d.attempts,
		Outcome: d.outcome, Evidence: d.evidence, QueuedBehind: d.behind, Class: d.class}
	if d.class == DDLOnline {
		out.WaitPhase = onlinePhase(d, inc)
	}
	if d.firstWait != 0 {
		fw := time.UnixMicro(d.firstWait).UTC()
		out.FirstWait = &fw
	}
	if d.settled != 0 {
		st := time.UnixMicro(d.settled).UTC()
		out.Settled = &st
	}
	out.AttemptLog = append([]Attempt{}, d.log...)
	if d.waiting {
		out.AttemptLog = append(out.AttemptLog, Attempt{Start: time.UnixMicro(d.curStartTS).UTC(), Waited: round3(d.waited - d.waitedBefore),
			Outcome: d.outcome, Evidence: d.evidence})
	}
	if d.xactStart != 0 {
		xs := time.UnixMicro(d.xactStart).UTC()
		out.XactStart = &xs
	}
	out.LockStatement, out.QueryNote = d.lockStmt, d.queryNote
	out.Commit, out.CommitEvidence = d.commit, d.commitEvidence
	if d.cw.on {
		out.Commit = CommitOpen
		out.CommitEvidence = fmt.Sprintf("the recording ends with its transaction (begun at %s) still open (%q at %s): the change is not committed yet", clock(d.cw.xact), d.cw.lastState, clock(d.cw.lastOpen))
	}
	if d.held && d.attempts == 0 {
		out.Outcome = OutcomeHeld
		out.Evidence = fmt.Sprintf("held %s on %s while others queued: the DDL's own transaction was the blocker", d.mode, d.relation)
	}
	if d.attempts > 1 {
		gaveUp := 0
		for _, a := range d.log[:max(len(d.log)-1, 0)] {
			if a.Outcome == OutcomeGaveUp || a.Outcome == OutcomeCancelled {
				gaveUp++
			}
		}
		switch {
		case d.outcome == OutcomeGaveUp && gaveUp == len(d.log)-1:
			out.Outcome = OutcomeLockTimeout
			out.Evidence = fmt.Sprintf("%d separate waits for %s, each given up while its blocker still held the lock: a lock_timeout (or statement_timeout) with retries, none of which got the lock; the last: %s", d.attempts, d.mode, d.evidence)
		case gaveUp > 0:
			out.Evidence = fmt.Sprintf("attempt %d of %d: %s; the %d before gave up while the blocker held its lock (lock_timeout retries)", d.attempts, d.attempts, d.evidence, gaveUp)
		}
	}
	return out
}

func sortedRoots(m map[Backend]*rootState) []*rootState {
	keys := make([]Backend, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePID)
	out := make([]*rootState, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func sortedWaiters(m map[Backend]*waiterState) []*waiterState {
	out := make([]*waiterState, 0, len(m))
	for _, w := range m {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *waiterState) int {
		if a.first != b.first {
			if a.first < b.first {
				return -1
			}
			return 1
		}
		return int(a.info.PID) - int(b.info.PID)
	})
	return out
}

// principalDDL is the strong request with the most sessions queued behind
// it (the earliest on a tie).
func principalDDL(m map[Backend]*ddlState) *ddlState {
	var best *ddlState
	for _, d := range m {
		if best == nil || d.behind > best.behind || (d.behind == best.behind && comparePID(d.backend, best.backend) < 0) {
			best = d
		}
	}
	return best
}

// round3 rounds to thousandths, half away from zero; a value that rounds
// to zero is +0 (JSON would write a negative zero as "-0").
func round3(f float64) float64 {
	r := math.Round(f*1000) / 1000
	if r == 0 {
		return 0
	}
	return r
}

// waiting is the exported waiting series: one point per sample that saw
// the incident, and a zero at each sample that saw it drained before it
// re-formed, standing until the queue re-formed (gaps excluded is not
// needed: nobody waited either way).
func (inc *incState) waiting() []WaitingPoint {
	out := make([]WaitingPoint, 0, len(inc.series)+len(inc.drains))
	di := 0
	for i, p := range inc.series {
		for di < len(inc.drains) && inc.drains[di] <= p.ts {
			if di > 0 || i > 0 {
				out = append(out, WaitingPoint{TS: time.UnixMicro(inc.drains[di]).UTC(), Seconds: round3(float64(p.ts-inc.drains[di]) / 1e6), ByApplication: map[string]int{}})
			}
			di++
		}
		out = append(out, WaitingPoint{TS: time.UnixMicro(p.ts).UTC(), Waiters: p.waiters, Seconds: round3(p.dt), ByApplication: p.byApp})
	}
	for ; di < len(inc.drains); di++ {
		out = append(out, WaitingPoint{TS: time.UnixMicro(inc.drains[di]).UTC(), ByApplication: map[string]int{}})
	}
	return out
}

// SessionApplication is the application a session counts under
// (ApplicationGroup, or its backend type when it has no name and is not
// a client backend).
func SessionApplication(s Session) string {
	if s.PID == 0 && s.ApplicationName == "(prepared transaction)" {
		return s.ApplicationName
	}
	if s.ApplicationName == "" && s.BackendType != "" && s.BackendType != "client backend" {
		return s.BackendType
	}
	return ApplicationGroup(s.ApplicationName)
}

// applications rolls the incident's waiting up by application.
func (inc *incState) applications(waiters []Session) []AppImpact {
	by := map[string]*AppImpact{}
	get := func(key string) *AppImpact {
		a, ok := by[key]
		if !ok {
			a = &AppImpact{Application: key}
			by[key] = a
		}
		return a
	}
	for _, w := range waiters {
		a := get(appRole(SessionApplication(w), w.Role))
		a.Waited++
		a.MaxWait = max(a.MaxWait, w.WaitedFor)
	}
	for _, p := range inc.series {
		for app, n := range p.byApp {
			get(app).WaiterSeconds += float64(n) * p.dt
		}
	}
	out := make([]AppImpact, 0, len(by))
	for key, a := range by {
		a.Connected, a.WaitingAtPeak = inc.peakConnected[key], inc.peakWaiting[key]
		a.WaiterSeconds = round3(a.WaiterSeconds)
		a.Application, a.Role = splitAppRole(key)
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b AppImpact) int {
		if a.WaiterSeconds != b.WaiterSeconds {
			if a.WaiterSeconds > b.WaiterSeconds {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Application, b.Application)
	})
	return out
}

// appRole is the key sessions are counted under: "application (role)".
func appRole(app, role string) string { return app + " (" + role + ")" }

func splitAppRole(key string) (string, string) {
	i := strings.LastIndex(key, " (")
	if i < 0 || !strings.HasSuffix(key, ")") {
		return key, ""
	}
	return key[:i], key[i+2 : len(key)-1]
}
