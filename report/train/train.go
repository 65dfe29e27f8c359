// Package train turns a recorded incident into a drill for new on-call
// staff: time advances through the incident, and at decision points taken
// from the analysis the trainee answers what the runbook asks — is the
// queue growing, which pid first, cancel or terminate, which session to
// leave alone, finish forward or roll back — with the runbook's own views
// of that moment at hand, then gets the evidence, a score and a debrief.
package train

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
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

// Keys of the answers that name no session.
const (
	KeyNone = "none" // no session needs an action / none of these is protected
)

// Choice is one answer offered.
type Choice struct {
	// Key is what the trainee may type besides the choice's letter: a pid,
	// "cancel", "growing".
	Key  string
	Text string
}

// Question is one decision point. Its answer and evidence come from the
// recording up to At only: what the on-call could have seen then.
type Question struct {
	Kind string
	// Step is the runbook step the question is about.
	Step string
	// At is the moment of the recording the question is asked at; the
	// views show that moment, and Waiting is how many sessions waited then.
	At       time.Time
	Waiting  int
	Prompt   string
	Choices  []Choice
	Answer   string // the right choice's key
	Evidence string
}

// Drill is a recorded incident prepared for training.
type Drill struct {
	Recording analyze.Recording
	// Incident is the whole incident, for the debrief: the questions never
	// use what it knows about their future.
	Incident  analyze.Incident
	Questions []Question
	// Paged is when the on-call is taken to have been paged: the first
	// full sample at least MinDuration into the queue that has an earlier
	// sample of the queue before it, so that a trend can be read.
	Paged time.Time
	// Seed orders the choices; it comes from the recording, so a drill is
	// the same every time.
	Seed   uint64
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
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", inc.Start.UnixMicro(), inc.ID)
	// The frames shown later need not log again what the analysis logged.
	cfg.Logger = slog.New(slog.DiscardHandler)
	d := &Drill{Recording: res.Recording, Incident: inc, cfg: cfg, frames: map[time.Time]*analyze.Frame{}, Seed: h.Sum64()}
	if err := d.build(ctx); err != nil {
		return nil, err
	}
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

// T formats a moment as its offset from the incident's start.
func (d *Drill) T(t time.Time) string {
	s := strconv.FormatFloat(t.Sub(d.Incident.Start).Seconds(), 'f', 1, 64)
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return "T" + s + "s"
}

// cut is the incident as the recording showed it up to at: analysed with
// nothing after at.
func (d *Drill) cut(ctx context.Context, at time.Time) (*analyze.Incident, error) {
	cfg := d.cfg
	if cfg.Until.IsZero() || at.Before(cfg.Until) {
		cfg.Until = at
	}
	res, err := analyze.Run(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("analyse the recording up to %s: %w", d.T(at), err)
	}
	var best *analyze.Incident
	for i := range res.Incidents {
		x := &res.Incidents[i]
		if x.Start.After(at) || (x.End != nil && x.End.Before(d.Incident.Start)) {
			continue
		}
		if best == nil || absDur(x.Start.Sub(d.Incident.Start)) < absDur(best.Start.Sub(d.Incident.Start)) {
			best = x
		}
	}
	if best == nil {
		return nil, fmt.Errorf("the recording up to %s shows no queue", d.T(at))
	}
	return best, nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// last2 are the waiting counts at the last sample at or before at and at
// the last one at least a second before it (or the queue's first sample):
// two samples the trainee can open, far enough apart to read a trend.
func last2(x *analyze.Incident, at time.Time) (prev, cur analyze.WaitingPoint, ok bool) {
	var pts []analyze.WaitingPoint
	for _, p := range x.Waiting {
		if !p.TS.After(at) {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		return analyze.WaitingPoint{}, analyze.WaitingPoint{}, false
	}
	cur = pts[len(pts)-1]
	if len(pts) < 2 {
		return analyze.WaitingPoint{}, cur, false
	}
	prev = pts[0]
	for _, p := range pts[:len(pts)-1] {
		if !p.TS.After(cur.TS.Add(-time.Second)) {
			prev = p
		}
	}
	return prev, cur, true
}

func (d *Drill) minDuration() time.Duration {
	if d.cfg.MinDuration > 0 {
		return d.cfg.MinDuration
	}
	return time.Second
}

// build asks the questions: at the page, the trend (once two samples can
// be opened), the first session to act on and how, the session to leave
// alone; then, for a DDL, finish forward or roll back once the first root
// blocker is gone. Each from the recording up to its moment only.
func (d *Drill) build(ctx context.Context) error {
	d.Paged = d.pagedAt()
	at := d.Paged
	x, err := d.cut(ctx, at)
	if err != nil {
		return err
	}
	prev, cur, two := last2(x, at)
	if two {
		d.Questions = append(d.Questions, d.trendQuestion(at, prev, cur))
	}
	sessions := candidates(x)
	first := firstAction(x)
	d.Questions = append(d.Questions, firstPIDQuestion(x, first, sessions, at, cur.Waiters))
	if q, ok := actionQuestion(first, at, cur.Waiters); ok {
		d.Questions = append(d.Questions, q)
	}
	d.Questions = append(d.Questions, handsOffQuestion(x, sessions, at, cur.Waiters))
	if d.Incident.DDL != nil {
		if q, ok, err := d.pathQuestion(ctx, d.pathMoment(at)); err != nil {
			return err
		} else if ok {
			d.Questions = append(d.Questions, q)
		}
	}
	d.order()
	return nil
}

// pagedAt is when the on-call is paged: at the first sample after the
// queue's first that is at least MinDuration into it (every wait seen at
// its start counts by then, in any cut); failing that, at the queue's last
// sample, or its start.
func (d *Drill) pagedAt() time.Time {
	inc := &d.Incident
	for i, p := range inc.Waiting {
		if i >= 1 && !p.TS.Before(inc.Start.Add(d.minDuration())) {
			return p.TS
		}
	}
	if n := len(inc.Waiting); n > 0 {
		return inc.Waiting[n-1].TS
	}
	return inc.Start
}

// trendQuestion asks whether the queue is growing, from two samples the
// trainee can open.
func (d *Drill) trendQuestion(at time.Time, prev, cur analyze.WaitingPoint) Question {
	trend := "steady"
	switch {
	case cur.Waiters > prev.Waiters:
		trend = "growing"
	case cur.Waiters < prev.Waiters:
		trend = "draining"
	}
	return Question{Kind: KindTrend, Step: "Triage (after Step 1)", At: at, Waiting: cur.Waiters,
		Prompt:   "Is the lock queue growing, steady or draining?",
		Choices:  []Choice{{"growing", "growing: more waiters every sample"}, {"steady", "steady"}, {"draining", "draining"}},
		Answer:   trend,
		Evidence: fmt.Sprintf("%d sessions waiting at %s, %d now at %s (lock_waiters in the Step 4 view, or count the Lock waits in Step 0).", prev.Waiters, d.T(prev.TS), cur.Waiters, d.T(at)),
	}
}

// firstAction is the first action of the runbook's containment order that
// is not to leave a session alone; nil when no session needs one.
func firstAction(x *analyze.Incident) *analyze.Action {
	for i := range x.Actions {
		if a := &x.Actions[i]; a.Action != "leave" {
			return a
		}
	}
	return nil
}

// firstPIDQuestion asks which session to act on first: the candidates, a
// prepared transaction by its GID, or none when no session needs an action.
func firstPIDQuestion(x *analyze.Incident, first *analyze.Action, sessions map[int32]string, at time.Time, waiting int) Question {
	answer, evidence := KeyNone, "no session holds a lock others wait on for long: the waits come and go (or PostgreSQL resolves them itself), and acting on any one session would not help. The triage checklist comes before Step 2."
	choices := pidChoices(sessions)
	switch {
	case first != nil && first.GID != "":
		// A prepared transaction: no backend, pg_blocking_pids says 0.
		answer, evidence = first.GID, first.Reason
		choices = append(choices, Choice{first.GID, "prepared transaction " + first.GID})
	case first != nil:
		answer, evidence = strconv.Itoa(int(first.PID)), rootEvidence(x, first)
	}
	return Question{Kind: KindFirstPID, Step: "Step 1 (identify the root blocker)", At: at, Waiting: waiting,
		Prompt:   "Which session do you act on first?",
		Choices:  append(choices, Choice{KeyNone, "none: no session needs an action"}),
		Answer:   answer,
		Evidence: evidence,
	}
}

// actionQuestion asks how to release the first session: a prepared
// transaction is committed or rolled back, a backend cancelled or
// terminated. ok is false when the first action is neither.
func actionQuestion(first *analyze.Action, at time.Time, waiting int) (q Question, ok bool) {
	switch {
	case first != nil && first.GID != "":
		return Question{Kind: KindAction, Step: "Step 2 (release the blocker)", At: at, Waiting: waiting,
			Prompt: fmt.Sprintf("Prepared transaction %s: how do you release it?", first.GID),
			Choices: []Choice{{"cancel", "pg_cancel_backend(0)"}, {"terminate", "pg_terminate_backend(0)"},
				{first.Action, fmt.Sprintf("%s PREPARED '%s'", strings.ToUpper(strings.TrimSuffix(first.Action, "_prepared")), first.GID)}},
			Answer:   first.Action,
			Evidence: first.Reason,
		}, true
	case first != nil && (first.Action == "cancel" || first.Action == "terminate"):
		return Question{Kind: KindAction, Step: "Step 2 (cancel first, terminate second)", At: at, Waiting: waiting,
			Prompt:   fmt.Sprintf("pid %d: cancel or terminate?", first.PID),
			Choices:  []Choice{{"cancel", "cancel: pg_cancel_backend"}, {"terminate", "terminate: pg_terminate_backend"}},
			Answer:   first.Action,
			Evidence: first.Reason,
		}, true
	}
	return Question{}, false
}

// handsOffQuestion asks which session must be left alone: the first
// protected one, offered among the unprotected candidates, or none.
func handsOffQuestion(x *analyze.Incident, sessions map[int32]string, at time.Time, waiting int) Question {
	handsOff := map[int32]string{}
	for pid, app := range sessions {
		if !slices.ContainsFunc(x.Protected, func(p analyze.Protected) bool { return p.PID == pid }) {
			handsOff[pid] = app
		}
	}
	leave, why := KeyNone, "none of these is a replication, backup or admin session: the runbook protects those. The migration is touched last, not never; waiting workers are victims, not causes."
	if len(x.Protected) > 0 {
		p := x.Protected[0]
		handsOff[p.PID] = cmp.Or(p.ApplicationName, p.BackendType)
		leave, why = strconv.Itoa(int(p.PID)), p.Reason
	}
	return Question{Kind: KindHandsOff, Step: "Step 2 (do not terminate replication/backup/admin sessions)", At: at, Waiting: waiting,
		Prompt:   "Which of these sessions must you not touch while you contain the incident?",
		Choices:  append(pidChoices(handsOff), Choice{KeyNone, "none of these"}),
		Answer:   leave,
		Evidence: why,
	}
}

// pathMoment is when to ask finish forward or roll back: at the first
// sample after the first root blocker was gone, when that is after the
// page; else at the page.
func (d *Drill) pathMoment(at time.Time) time.Time {
	inc := &d.Incident
	gone := time.Time{}
	for _, r := range inc.RootBlockers {
		if r.Gone != nil && (gone.IsZero() || r.Gone.Before(gone)) {
			gone = *r.Gone
		}
	}
	if gone.IsZero() || !gone.After(at) {
		return at
	}
	for _, p := range inc.Waiting {
		if p.TS.After(gone) {
			return p.TS
		}
	}
	return gone
}

// pathQuestion asks Step 3 at when, from the recording up to when: roll
// back when retries keep recreating the queue, when a protected session is
// the root, or when the queue keeps growing; finish forward when it drains.
func (d *Drill) pathQuestion(ctx context.Context, when time.Time) (Question, bool, error) {
	x, err := d.cut(ctx, when)
	if err != nil {
		return Question{}, false, err
	}
	if x.DDL == nil {
		return Question{}, false, nil
	}
	prev, cur, _ := last2(x, when)
	protectedRoot := slices.ContainsFunc(x.RootBlockers, func(r analyze.RootBlocker) bool {
		return slices.ContainsFunc(x.Protected, func(p analyze.Protected) bool { return p.PID == r.PID })
	})
	blocking := slices.ContainsFunc(x.RootBlockers, func(r analyze.RootBlocker) bool { return r.Gone == nil && !r.LastSeen.Before(when) })
	var path, evidence string
	switch {
	case x.DDL.Attempts >= 3:
		path, evidence = "roll back", fmt.Sprintf("the DDL has waited %d separate times: retries keep recreating the lock queue (Path B)", x.DDL.Attempts)
	case protectedRoot:
		path, evidence = "roll back", "a protected session is the root: it will not give way; stop the attempt and reschedule it after it (Path B)"
	case !blocking:
		path, evidence = "finish-forward", fmt.Sprintf("the root blocker is gone (%d waiting now, %d at %s): the DDL can complete; finish it under a lock_timeout (Path A)", cur.Waiters, prev.Waiters, d.T(prev.TS))
	case cur.Waiters < prev.Waiters:
		path, evidence = "finish-forward", fmt.Sprintf("the queue is draining (%d waiting at %s, %d now): the change can complete once its blocker is gone; finish it under a lock_timeout (Path A)", prev.Waiters, d.T(prev.TS), cur.Waiters)
	default:
		path, evidence = "roll back", fmt.Sprintf("the root blocker still holds and the queue is not draining (%d waiting at %s, %d now): impact keeps growing (Path B)", prev.Waiters, d.T(prev.TS), cur.Waiters)
	}
	return Question{Kind: KindPath, Step: "Step 3 (finish forward or roll back)", At: when, Waiting: cur.Waiters,
		Prompt:   "Step 3: finish the schema change forward, or roll it back?",
		Choices:  []Choice{{"finish-forward", "finish forward (Path A), under a lock_timeout"}, {"roll back", "roll back (Path B)"}},
		Answer:   path,
		Evidence: evidence,
	}, true, nil
}

// Shuffle orders the choices again from another seed (the same seed, the
// same order).
func (d *Drill) Shuffle(seed uint64) {
	d.Seed = seed
	for i := range d.Questions {
		q := &d.Questions[i]
		slices.SortFunc(q.Choices, func(a, b Choice) int { return strings.Compare(a.Key, b.Key) })
	}
	d.order()
}

// order shuffles each question's choices with the drill's seed, placing
// the right answers so that no letter is right in more than its share of
// the questions: answering the same letter every time is no strategy.
func (d *Drill) order() {
	rng := rand.New(rand.NewPCG(d.Seed, 0x5eed))
	used := map[int]int{}
	for qi := range d.Questions {
		q := &d.Questions[qi]
		n := len(q.Choices)
		least := -1
		var pos []int
		for i := range n {
			switch {
			case least < 0 || used[i] < least:
				least, pos = used[i], []int{i}
			case used[i] == least:
				pos = append(pos, i)
			}
		}
		at := pos[rng.IntN(len(pos))]
		used[at]++
		var right Choice
		var rest []Choice
		for _, c := range q.Choices {
			if c.Key == q.Answer {
				right = c
			} else {
				rest = append(rest, c)
			}
		}
		rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		q.Choices = slices.Insert(rest, min(at, len(rest)), right)
	}
}

// candidates are the sessions the pid questions offer: the root blockers,
// the DDL and the head of the queue, as the recording showed them so far
// (protected sessions are added by the hands-off question only).
func candidates(x *analyze.Incident) map[int32]string {
	m := map[int32]string{}
	for _, r := range x.RootBlockers {
		if r.PID != 0 {
			m[r.PID] = r.ApplicationName
		}
	}
	if x.DDL != nil {
		m[x.DDL.PID] = x.DDL.ApplicationName
	}
	// Waiters that are neither: the first two, as a trap.
	n := 0
	for _, w := range x.Waiters {
		if _, ok := m[w.PID]; !ok && n < 2 && !slices.ContainsFunc(x.Protected, func(p analyze.Protected) bool { return p.PID == w.PID }) {
			m[w.PID] = w.ApplicationName
			n++
		}
	}
	return m
}

func pidChoices(m map[int32]string) []Choice {
	pids := make([]int32, 0, len(m))
	for p := range m {
		pids = append(pids, p)
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

func rootEvidence(x *analyze.Incident, a *analyze.Action) string {
	pid := a.PID
	for _, r := range x.RootBlockers {
		if r.PID == pid {
			return fmt.Sprintf("pid %d is a root blocker: %s, waiting for nothing, its transaction %.1f s old when first seen blocking, %d sessions queued behind it so far (the blocking graph's blocking_pid that is never a waiting_pid).",
				pid, r.State, r.TransactionAge, r.PeakBehind)
		}
	}
	return fmt.Sprintf("pid %d comes first in the runbook's containment order: %s", pid, a.Reason)
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

// Debrief is the end of the drill: the score question by question with
// the runbook step each is about, the trainee's answers beside what the
// recorded on-call did, the post-mortem's root cause, and what the fastest
// correct containment would have saved. Here, and only here, the drill
// speaks of what came after the questions.
func (d *Drill) Debrief(s Score) string {
	var b strings.Builder
	d.debriefScore(&b, s)
	fmt.Fprintf(&b, "\nWhat happened: %s\n", plain(report.Summary(d.Incident)))
	d.debriefBeside(&b, s)
	d.debriefContainment(&b)
	return b.String()
}

// debriefScore is the score, then each answer with its runbook step, its
// moment and the right answer.
func (d *Drill) debriefScore(b *strings.Builder, s Score) {
	fmt.Fprintf(b, "Score: %d of %d.\n", s.Right(), len(d.Questions))
	for _, a := range s.Answers {
		q := d.Questions[a.Question]
		given := "no answer"
		if a.Given != "" {
			given = "you: " + a.Given
		}
		mark := "right"
		if !a.Right {
			mark = "missed"
		}
		fmt.Fprintf(b, "  %-6s %s, %s: %s (%s; right: %s)\n", mark, q.Step, d.T(q.At), q.Prompt, given, q.Answer)
	}
}

// debriefBeside sets the trainee's Step 2 and Step 3 beside what the
// recorded on-call did.
func (d *Drill) debriefBeside(b *strings.Builder, s Score) {
	inc := &d.Incident
	b.WriteString("\nYou and the recorded on-call:\n")
	mine := map[string]string{}
	for _, a := range s.Answers {
		if a.Given != "" {
			mine[d.Questions[a.Question].Kind] = a.Given
		}
	}
	you := "no session chosen"
	if p := mine[KindFirstPID]; p == KeyNone {
		you = "no action"
	} else if p != "" {
		you = "pid " + p
		if act := mine[KindAction]; act != "" {
			you = act + " pid " + p
		}
		you += " at " + d.T(d.Paged)
	}
	fmt.Fprintf(b, "  Step 2, you:       %s\n", you)
	done := inc.Runbook.Done
	if len(done) == 0 {
		done = []string{"the recording shows no action on a root blocker"}
	}
	for i, line := range done {
		label := "  Step 2, on-call:   "
		if i > 0 {
			label = "                     "
		}
		fmt.Fprintf(b, "%s%s\n", label, plain(line))
	}
	if p := mine[KindPath]; p != "" {
		fmt.Fprintf(b, "  Step 3, you:       %s; the recording: %s (%s)\n", p, inc.Runbook.Path, plain(inc.Runbook.PathEvidence))
	}
}

// debriefContainment is what cancelling or terminating the first root
// blocker when paged would have spared, in waiter-seconds; nothing when the
// runbook would cancel or terminate no session.
func (d *Drill) debriefContainment(b *strings.Builder) {
	inc := &d.Incident
	var first *analyze.Action
	for i := range inc.Actions {
		if a := &inc.Actions[i]; a.Action == "cancel" || a.Action == "terminate" {
			first = a
			break
		}
	}
	if first == nil {
		return
	}
	end := d.Recording.End
	what := "was still blocking when the recording ends"
	for _, r := range inc.RootBlockers {
		if r.PID == first.PID && r.Gone != nil {
			end = *r.Gone
			what = "stopped blocking at " + d.T(end)
		}
	}
	if x := inc.DDL; x != nil && x.PID == first.PID && x.BackendStart.Equal(first.BackendStart) {
		// The change gives way: the action is on the waiting DDL.
		what = "was still waiting when the recording ends"
		if x.Settled != nil {
			end = *x.Settled
			what = analyze.OutcomeWords(x.Outcome) + " at " + d.T(end)
		}
	}
	saved := inc.WaiterSecondsBetween(d.Paged, end)
	pct := 0.0
	if inc.WaiterSeconds > 0 {
		pct = 100 * saved / inc.WaiterSeconds
	}
	n := 0
	for _, q := range d.Questions {
		if q.At.Equal(d.Paged) {
			n = q.Waiting
		}
	}
	fmt.Fprintf(b, "\nFastest correct containment (Step 2): %s pid %d at %s, when the queue was evident (%d waiting). In the recording it %s. "+
		"Acting at %s would have spared about %.1f of the %.1f waiter-seconds (%.0f%%), taking the queue to drain as fast after it as it did.\n",
		first.Action, first.PID, d.T(d.Paged), n, what, d.T(d.Paged), saved, inc.WaiterSeconds, pct)
}

// plain drops Markdown code-span backticks for the terminal.
func plain(s string) string { return replay.Printable(strings.ReplaceAll(s, "`", "")) }
