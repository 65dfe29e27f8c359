package analyze

import (
	"fmt"
	"slices"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// CommandRun is a command a wrapping capture ran (capture -- COMMAND).
type CommandRun struct {
	Start       time.Time `json:"start"`
	CommandLine string    `json:"command_line"`
	// End is null when the recording ends first; Outcome is "exited with
	// status N" or "killed by signal N (name)".
	End      *time.Time `json:"end"`
	Outcome  string     `json:"outcome"`
	Duration float64    `json:"duration_s"`
}

// GuardCancel is a lock waiter the capture's guard cancelled.
type GuardCancel struct {
	TS              time.Time `json:"ts"`
	PID             int32     `json:"pid"`
	ApplicationName string    `json:"application_name"`
	Mode            string    `json:"mode"`
	Relation        string    `json:"relation"`
	Waited          float64   `json:"waited_s"`
	QueuedBehind    int       `json:"queued_behind"`
	Query           string    `json:"query"`
	// Incident is the id of the incident it cut short, 0 when none.
	Incident int `json:"incident"`
}

// deployEvents reads the wrapped commands and the guard's cancels from
// the recording's events (within the analysed samples), ties each cancel
// to its incident and adds "without the guard" to that incident's what-if.
func deployEvents(res *Result, events []recording.Event) {
	rec := &res.Recording
	rec.Commands, rec.GuardCancels = []CommandRun{}, []GuardCancel{}
	from, to := rec.Start.Add(-time.Minute).UnixMicro(), rec.End.Add(time.Minute).UnixMicro()
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b recording.Event) int { return int(a.TS - b.TS) })
	for _, e := range events {
		if e.TS < from || e.TS > to {
			continue
		}
		ts := time.UnixMicro(e.TS).UTC()
		switch e.Kind {
		case recording.EventCommandStart:
			if _, line, ok := recording.ParseCommandStart(e.Message); ok {
				rec.Commands = append(rec.Commands, CommandRun{Start: ts, CommandLine: line})
			}
		case recording.EventCommandEnd:
			outcome, d, line, ok := recording.ParseCommandEnd(e.Message)
			if !ok {
				continue
			}
			i := len(rec.Commands) - 1
			if i < 0 || rec.Commands[i].End != nil {
				// Its start lies before the analysed window.
				rec.Commands = append(rec.Commands, CommandRun{Start: ts.Add(-d), CommandLine: line})
				i++
			}
			c := &rec.Commands[i]
			c.End, c.Outcome, c.Duration = &ts, outcome, round3(d.Seconds())
		case recording.EventGuardCancel:
			g, ok := recording.ParseGuardCancel(e.Message)
			if !ok {
				continue
			}
			gc := GuardCancel{TS: ts, PID: g.PID, ApplicationName: g.App, Mode: g.Mode, Relation: g.Relation,
				Waited: round3(g.Waited.Seconds()), QueuedBehind: g.Behind, Query: g.Query}
			if x := incidentOf(res.Incidents, g.PID, ts); x != nil {
				gc.Incident = x.ID
				x.WhatIf = append(x.WhatIf, withoutGuard(x, gc, rec.End))
				guardEnding(x, gc)
				guardCancelled(x, gc)
			}
			rec.GuardCancels = append(rec.GuardCancels, gc)
		}
	}
}

// incidentOf finds the incident in which pid waited at ts.
func incidentOf(incs []Incident, pid int32, ts time.Time) *Incident {
	for i := range incs {
		x := &incs[i]
		if ts.Before(x.Start) || (x.End != nil && ts.After(*x.End)) {
			continue
		}
		if x.DDL != nil && x.DDL.PID == pid {
			return x
		}
		for _, w := range x.Waiters {
			if w.PID == pid {
				return x
			}
		}
	}
	return nil
}

// withoutGuard is the what-if of an incident the guard cut short: the
// DDL and the sessions queued behind it at the cancel keep waiting until
// the root blocker went away, or to the end of the recording (a lower
// bound: the blocker may have held its lock longer).
func withoutGuard(x *Incident, g GuardCancel, recEnd time.Time) WhatIf {
	until, why := recEnd, "the recording ended"
	gone := len(x.RootBlockers) > 0
	var last time.Time
	for _, r := range x.RootBlockers {
		if r.Gone == nil {
			gone = false
			break
		}
		if r.Gone.After(last) {
			last = *r.Gone
		}
	}
	// A root blocker that "went away" within a second of the cancel only
	// stopped blocking because the cancel drained the queue: it still held
	// its lock, as far as the recording can tell.
	if gone && last.Sub(g.TS) > time.Second {
		until, why = last, "its root blocker went away"
	}
	w := WhatIf{Scenario: "without the guard", Assumptions: []string{
		"the queue stays as it stood at the cancel: sessions that would have joined it are not counted, so this is a lower bound",
		"the root blocker goes away when it did"}}
	actual := x.WhatIf[0] // "actual" comes first
	stuck := g.QueuedBehind + 1
	extra := max(until.Sub(g.TS).Seconds(), 0)
	w.PeakWaiters = max(actual.PeakWaiters, stuck)
	w.Duration = round3(max(actual.Duration, until.Sub(x.Start).Seconds()))
	w.WaiterSeconds = round3(actual.WaiterSeconds + float64(stuck)*extra)
	w.Effect = fmt.Sprintf("the guard cancelled pid %d (%s on %s) after %.1f s; without it, it and the %d sessions behind it would have waited %.1f s more, until %s: %.1f waiter-seconds spared",
		g.PID, g.Mode, g.Relation, g.Waited, g.QueuedBehind, extra, why, float64(stuck)*extra)
	return w
}

// guardEnding names the guard as what ended the DDL it cancelled: the
// samples alone see the wait end (and often the session leave with its
// client) without being able to say why; the guard_cancel event says.
func guardEnding(x *Incident, g GuardCancel) {
	d := x.DDL
	if d == nil || d.PID != g.PID || d.Outcome == OutcomeGranted || d.Outcome == OutcomeHeld {
		return
	}
	d.Outcome = OutcomeCancelled
	d.Evidence = fmt.Sprintf("lockscope's guard cancelled it at %s after %.1f s of waiting, with %d sessions queued behind it (a guard_cancel event); the samples show: %s",
		g.TS.Format("15:04:05.000"), g.Waited, g.QueuedBehind, d.Evidence)
}
