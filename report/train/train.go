// Package train turns a recorded incident into a drill for new on-call
// staff: time advances through the incident, and at decision points taken
// from the analysis the trainee answers what the runbook asks — is the
// queue growing, which pid first, cancel or terminate, which session to
// leave alone, finish forward or roll back — with the runbook's own views
// of that moment at hand, then gets the evidence, a score and a debrief.
package train

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/report"
	"github.com/lockscope/lockscope/report/replay"
)

// Question kinds.
const (
	KindTrend    = "trend"     // is the queue growing, steady or draining?
	KindFirstPID = "first-pid" // which pid do you act on first?
	KindAction   = "action"    // cancel or terminate it?
	KindHandsOff = "hands-off" // which session must you not touch?
	KindPath     = "path"      // finish forward or roll back?
)

// Choice is one answer offered.
type Choice struct {
	// Key is what the trainee may type besides the choice's letter: a pid,
	// "cancel", "growing".
	Key  string
	Text string
}

// Question is one decision point.
type Question struct {
	Kind string
	// At is the moment of the recording the question is asked at; the
	// views show that moment.
	At       time.Time
	Prompt   string
	Choices  []Choice
	Answer   string // the right choice's key
	Evidence string
}

// Drill is a recorded incident prepared for training.
type Drill struct {
	Recording analyze.Recording
	Incident  analyze.Incident
	Questions []Question
	// Paged is when the on-call is taken to have been paged: the first
	// sample with at least half the peak waiting.
	Paged  time.Time
	cfg    analyze.Config
	frames map[time.Time]*analyze.Frame
}

// New analyses the recording and prepares a drill on incident n (0: the
// one with the most waiter-seconds).
func New(ctx context.Context, cfg analyze.Config, n int) (*Drill, error) {
	res, err := analyze.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if len(res.Incidents) == 0 {
		return nil, fmt.Errorf("the recording (%s to %s UTC) has no lock-queue incident to train on", res.Recording.Start.Format("2006-01-02 15:04:05"), res.Recording.End.Format("15:04:05"))
	}
	var inc analyze.Incident
	switch {
	case n > len(res.Incidents):
		return nil, fmt.Errorf("the recording has %d incident(s), not %d: see lockscope analyze", len(res.Incidents), n)
	case n > 0:
		inc = res.Incidents[n-1]
	default:
		inc = slices.MaxFunc(res.Incidents, func(a, b analyze.Incident) int {
			return cmpFloat(a.WaiterSeconds, b.WaiterSeconds)
		})
	}
	d := &Drill{Recording: res.Recording, Incident: inc, cfg: cfg, frames: map[time.Time]*analyze.Frame{}}
	d.build()
	return d, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// waitingAt is the number of waiters at the last sample at or before t
// (0 before the incident).
func (d *Drill) waitingAt(t time.Time) (int, time.Time) {
	n, at := 0, d.Incident.Start
	for _, p := range d.Incident.Waiting {
		if p.TS.After(t) {
			break
		}
		n, at = p.Waiters, p.TS
	}
	return n, at
}

// T formats a moment as its offset from the incident's start.
func (d *Drill) T(t time.Time) string {
	s := strconv.FormatFloat(t.Sub(d.Incident.Start).Seconds(), 'f', 1, 64)
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return "T" + s + "s"
}

func (d *Drill) build() {
	inc := &d.Incident
	d.Paged = inc.PeakAt
	for _, p := range inc.Waiting {
		if p.Waiters >= max(2, (inc.PeakWaiters+1)/2) || p.Waiters == inc.PeakWaiters {
			d.Paged = p.TS
			break
		}
	}
	at := d.Paged

	// Is the queue growing? Compared with two seconds earlier.
	cur, _ := d.waitingAt(at)
	prev, prevAt := d.waitingAt(at.Add(-2 * time.Second))
	if at.Add(-2 * time.Second).Before(inc.Start) {
		prev, prevAt = 0, inc.Start.Add(-2*time.Second)
	}
	trend := "steady"
	switch {
	case cur > prev:
		trend = "growing"
	case cur < prev:
		trend = "draining"
	}
	d.Questions = append(d.Questions, Question{Kind: KindTrend, At: at,
		Prompt:   "Is the lock queue growing, steady or draining?",
		Choices:  []Choice{{"growing", "growing: more waiters every sample"}, {"steady", "steady"}, {"draining", "draining"}},
		Answer:   trend,
		Evidence: fmt.Sprintf("%d sessions waiting at %s, %d at %s (lock_waiters in the Step 4 view, or count the Lock waits in Step 0).", prev, d.T(prevAt), cur, d.T(at)),
	})

	// Which pid first, and how.
	sessions := d.candidates()
	var first *analyze.Action
	for i := range inc.Actions {
		if a := &inc.Actions[i]; a.Action == "cancel" || a.Action == "terminate" {
			first = a
			break
		}
	}
	if first != nil {
		d.Questions = append(d.Questions, Question{Kind: KindFirstPID, At: at,
			Prompt:   "Which session do you act on first (pg_cancel_backend or pg_terminate_backend)?",
			Choices:  d.pidChoices(sessions, first.PID),
			Answer:   strconv.Itoa(int(first.PID)),
			Evidence: d.rootEvidence(first.PID),
		})
		d.Questions = append(d.Questions, Question{Kind: KindAction, At: at,
			Prompt:   fmt.Sprintf("pid %d: cancel or terminate?", first.PID),
			Choices:  []Choice{{"cancel", "cancel: pg_cancel_backend"}, {"terminate", "terminate: pg_terminate_backend"}},
			Answer:   first.Action,
			Evidence: first.Reason,
		})
	}

	// Which session must be left alone.
	var leave int32
	var why string
	if len(inc.Protected) > 0 {
		leave, why = inc.Protected[0].PID, inc.Protected[0].Reason
	} else {
		for _, a := range inc.Actions {
			if a.Action == "leave" {
				leave, why = a.PID, a.Reason
				break
			}
		}
	}
	if leave != 0 {
		d.Questions = append(d.Questions, Question{Kind: KindHandsOff, At: at,
			Prompt:   "Which of these sessions must you not touch while you contain the incident?",
			Choices:  d.pidChoices(sessions, leave),
			Answer:   strconv.Itoa(int(leave)),
			Evidence: why,
		})
	}

	// Finish forward or roll back, once the blocker is gone.
	if p := inc.Runbook.Path; p == "finish-forward" || p == "roll back" {
		when := at
		if len(inc.RootBlockers) > 0 && inc.RootBlockers[0].Gone != nil {
			when = *inc.RootBlockers[0].Gone
		} else if inc.End != nil {
			when = *inc.End
		}
		d.Questions = append(d.Questions, Question{Kind: KindPath, At: when,
			Prompt:   "Step 3: finish the schema change forward, or roll it back?",
			Choices:  []Choice{{"finish-forward", "finish forward (Path A)"}, {"roll back", "roll back (Path B)"}},
			Answer:   p,
			Evidence: inc.Runbook.PathEvidence,
		})
	}
}

// candidates are the sessions the pid questions offer: the root blockers,
// the DDL, protected sessions and the head of the queue.
func (d *Drill) candidates() map[int32]string {
	inc := &d.Incident
	m := map[int32]string{}
	for _, r := range inc.RootBlockers {
		m[r.PID] = r.ApplicationName
	}
	if inc.DDL != nil {
		m[inc.DDL.PID] = inc.DDL.ApplicationName
	}
	for _, p := range inc.Protected {
		m[p.PID] = p.ApplicationName
	}
	// Waiters that are neither: the first two, as a trap.
	n := 0
	for _, w := range inc.Waiters {
		if _, ok := m[w.PID]; !ok && n < 2 {
			m[w.PID] = w.ApplicationName
			n++
		}
	}
	return m
}

func (d *Drill) pidChoices(m map[int32]string, answer int32) []Choice {
	pids := make([]int32, 0, len(m))
	for p := range m {
		pids = append(pids, p)
	}
	if !slices.Contains(pids, answer) {
		pids = append(pids, answer)
	}
	slices.Sort(pids)
	var cs []Choice
	for _, p := range pids {
		text := fmt.Sprintf("pid %d", p)
		if app := m[p]; app != "" {
			text += " (" + app + ")"
		}
		cs = append(cs, Choice{Key: strconv.Itoa(int(p)), Text: text})
	}
	return cs
}

func (d *Drill) rootEvidence(pid int32) string {
	for _, r := range d.Incident.RootBlockers {
		if r.PID == pid {
			return fmt.Sprintf("pid %d is a root blocker: %s, waiting for nothing, its transaction %.1f s old, %d sessions queued behind it at the peak (the blocking graph's blocking_pid that is never a waiting_pid).",
				pid, r.State, r.TransactionAge, r.PeakBehind)
		}
	}
	return fmt.Sprintf("pid %d comes first in the runbook's containment order.", pid)
}

// Frame returns the recording's last full sample at or before t.
func (d *Drill) Frame(ctx context.Context, t time.Time) (*analyze.Frame, error) {
	if f, ok := d.frames[t]; ok {
		return f, nil
	}
	var got *analyze.Frame
	err := replay.Walk(ctx, d.cfg, t, t, 0, func(_ time.Time, f *analyze.Frame) error {
		got = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	if got == nil {
		return nil, fmt.Errorf("no sample at or before %s", t.Format(time.RFC3339Nano))
	}
	d.frames[t] = got
	return got, nil
}

// Check reads an answer to question q: a choice's letter, its key, or for
// pids the number. valid is false when the text names no choice.
func (d *Drill) Check(q int, text string) (key string, right, valid bool) {
	qu := &d.Questions[q]
	text = strings.ToLower(strings.TrimSpace(text))
	text = strings.TrimPrefix(text, "pid ")
	for i, c := range qu.Choices {
		if text == string(rune('a'+i)) || text == strings.ToLower(c.Key) || (c.Key == "roll back" && text == "rollback") {
			return c.Key, c.Key == qu.Answer, true
		}
	}
	return "", false, false
}

// Letter is the letter of question q's choice with the given key.
func (d *Drill) Letter(q int, key string) string {
	for i, c := range d.Questions[q].Choices {
		if c.Key == key {
			return string(rune('a' + i))
		}
	}
	return "?"
}

// Answer is the trainee's answer to one question.
type Answer struct {
	Question int
	Given    string // the choice's key; "" when not answered
	Right    bool
}

// Score is how a trainee did.
type Score struct {
	Answers []Answer
}

// Right counts the right answers.
func (s Score) Right() int {
	n := 0
	for _, a := range s.Answers {
		if a.Right {
			n++
		}
	}
	return n
}

// Debrief is the end of the drill: the score, the post-mortem's root
// cause, and what the fastest correct containment would have saved.
func (d *Drill) Debrief(s Score) string {
	inc := &d.Incident
	var b strings.Builder
	fmt.Fprintf(&b, "Score: %d of %d.\n", s.Right(), len(d.Questions))
	for _, a := range s.Answers {
		if !a.Right {
			q := d.Questions[a.Question]
			given := "no answer"
			if a.Given != "" {
				given = "you said " + a.Given
			}
			fmt.Fprintf(&b, "  missed: %s (%s; right: %s)\n", q.Prompt, given, q.Answer)
		}
	}
	fmt.Fprintf(&b, "\nWhat happened: %s\n", plain(report.Summary(*inc)))
	var first *analyze.Action
	for i := range inc.Actions {
		if a := &inc.Actions[i]; a.Action == "cancel" || a.Action == "terminate" {
			first = a
			break
		}
	}
	if first == nil {
		return b.String()
	}
	end := d.Recording.End
	what := "was still blocking when the recording ends"
	for _, r := range inc.RootBlockers {
		if r.PID == first.PID && r.Gone != nil {
			end = *r.Gone
			what = "stopped blocking at " + d.T(end)
		}
	}
	saved := inc.WaiterSecondsBetween(d.Paged, end)
	pct := 0.0
	if inc.WaiterSeconds > 0 {
		pct = 100 * saved / inc.WaiterSeconds
	}
	fmt.Fprintf(&b, "\nFastest correct containment: %s pid %d at %s, when the queue was evident (%d waiting). In the recording it %s. "+
		"Acting at %s would have spared about %.1f of the %.1f waiter-seconds (%.0f%%), taking the queue to drain as fast after it as it did.\n",
		first.Action, first.PID, d.T(d.Paged), func() int { n, _ := d.waitingAt(d.Paged); return n }(), what, d.T(d.Paged), saved, inc.WaiterSeconds, pct)
	return b.String()
}

// plain drops Markdown code-span backticks for the terminal.
func plain(s string) string { return replay.Printable(strings.ReplaceAll(s, "`", "")) }
