package train_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
	"github.com/lockscope/lockscope/report/train"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, &srv, pgtest.Options{}))
}

// rightAnswers are the runbook's answers for a staged incident, from what
// was staged: the root blocker first, terminated because it sits idle in
// transaction, the bystander left alone (or none of these: the migration
// is touched last, not never), and the change finished forward once the
// blocker is gone. The trend comes from the recording's own samples of the
// staged sessions (trendOf), not from the analysis.
func rightAnswers(truth scenario.Truth) map[string]string {
	leave := train.KeyNone
	if len(truth.Bystanders) > 0 {
		leave = fmt.Sprint(truth.Bystanders[0].PID)
	}
	return map[string]string{
		train.KindFirstPID: fmt.Sprint(truth.Root.PID),
		train.KindAction:   "terminate",
		train.KindHandsOff: leave,
		train.KindPath:     "finish-forward",
	}
}

// trendOf counts the staged sessions waiting on a lock in each full sample
// up to at, and compares the last with the last one at least a second
// earlier (or the first that saw a wait).
func trendOf(t *testing.T, rec string, truth scenario.Truth, at time.Time) string {
	t.Helper()
	type point struct {
		ts time.Time
		n  int
	}
	var pts []point
	pids := truth.PIDs()
	err := analyze.Frames(context.Background(), analyze.Config{Dirs: []string{rec}, Until: at}, func(f *analyze.Frame) error {
		n := 0
		for _, a := range f.Activity {
			if a.WaitEventType == "Lock" && slices.Contains(pids, a.PID) {
				n++
			}
		}
		if n > 0 || len(pts) > 0 {
			pts = append(pts, point{f.TS, n})
		}
		return nil
	})
	if err != nil || len(pts) < 2 {
		t.Fatalf("samples up to %s: %v (%d)", at, err, len(pts))
	}
	cur, prev := pts[len(pts)-1], pts[0]
	for _, p := range pts[:len(pts)-1] {
		if !p.ts.After(cur.ts.Add(-time.Second)) {
			prev = p
		}
	}
	switch {
	case cur.n > prev.n:
		return "growing"
	case cur.n < prev.n:
		return "draining"
	}
	return "steady"
}

// wrongAnswers picks, for each question, a choice other than the right one.
func script(t *testing.T, d *train.Drill, answers map[string]string, wrong bool) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("blocking\n") // look before answering
	for _, q := range d.Questions {
		want, ok := answers[q.Kind]
		if !ok {
			t.Fatalf("no scripted answer for a %s question", q.Kind)
		}
		if wrong {
			for _, c := range q.Choices {
				if c.Key != want {
					want = c.Key
					break
				}
			}
		}
		b.WriteString(want + "\n")
	}
	return b.String()
}

// A trainee answering a freshly recorded incident from the runbook scores
// every point; one who picks another choice each time scores none. The
// answers come from what was staged, not from the analysis.
func TestTrainScriptedAnswers(t *testing.T) {
	cases := []pgtest.Staged{
		{Scenario: "cron-vs-alter", Options: scenario.Options{Table: "account_move", Workers: 6, AppPrefix: "erp"}},
		{Scenario: "create-index-pgdump", Options: scenario.Options{Table: "mail_message", Workers: 4, AppPrefix: "crm"}},
	}
	// Each staged incident is a root blocker, idle in transaction, ahead of
	// a DDL: every question is asked.
	wantKinds := []string{train.KindTrend, train.KindFirstPID, train.KindAction, train.KindHandsOff, train.KindPath}
	pgtest.RunStaged(t, cases, func(t *testing.T, c pgtest.Staged) {
		ctx := context.Background()
		truth, rec := pgtest.RecordStaged(t, srv, c, 2*time.Second)
		d := newDrill(t, rec)
		var kinds []string
		for _, q := range d.Questions {
			kinds = append(kinds, q.Kind)
		}
		if strings.Join(kinds, ",") != strings.Join(wantKinds, ",") {
			t.Fatalf("questions %v, want %v", kinds, wantKinds)
		}
		answers := rightAnswers(truth)
		answers[train.KindTrend] = trendOf(t, rec, truth, d.Questions[0].At)
		var out strings.Builder
		score, err := train.RunLines(ctx, d, strings.NewReader(script(t, d, answers, false)), &out)
		if err != nil {
			t.Fatal(err)
		}
		if score.Right() != len(d.Questions) {
			t.Errorf("right answers scored %d of %d:\n%s", score.Right(), len(d.Questions), out.String())
		}
		for _, want := range []string{" waiting_pid | waiting_app ", fmt.Sprintf("Score: %d of %d.", len(d.Questions), len(d.Questions)),
			"What happened: ", "Fastest correct containment (Step 2): terminate pid " + fmt.Sprint(truth.Root.PID)} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		out.Reset()
		score, err = train.RunLines(ctx, d, strings.NewReader(script(t, d, answers, true)), &out)
		if err != nil {
			t.Fatal(err)
		}
		if score.Right() != 0 || !strings.Contains(out.String(), "Not quite: the answer is") {
			t.Errorf("wrong answers scored %d:\n%s", score.Right(), out.String())
		}
	})
}

// The line mode re-asks after an answer that names no choice, accepts
// letters and values, and counts questions left at the end of input as
// missed. Runs offline on a committed recording.
func TestTrainLineMode(t *testing.T) {
	ctx := context.Background()
	d := newDrill(t, fixtureRecording("cron-vs-alter"))
	if len(d.Questions) < 4 {
		t.Fatalf("%d questions", len(d.Questions))
	}
	first := d.Questions[0]
	letter := d.Letter(0, first.Answer)
	var out strings.Builder
	score, err := train.RunLines(ctx, d, strings.NewReader("maybe\nverify\n"+strings.ToUpper(letter)+"\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	o := out.String()
	for _, want := range []string{`"maybe" is not one of the choices`, " lock_waiters ", "Right. ", fmt.Sprintf("Score: 1 of %d.", len(d.Questions)), "(no answer; right: "} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if len(score.Answers) != len(d.Questions) || !score.Answers[0].Right || score.Answers[1].Given != "" {
		t.Errorf("score %+v", score)
	}
	// quit ends the drill at once.
	out.Reset()
	score, _ = train.RunLines(ctx, d, strings.NewReader("quit\n"), &out)
	if score.Right() != 0 || strings.Count(out.String(), "Question ") != 1 {
		t.Errorf("quit: score %d, output:\n%s", score.Right(), out.String())
	}
}

// Recorded text is shown escaped: the drill prints nothing a terminal
// would interpret.
func TestTrainOutputHasNoControlCharacters(t *testing.T) {
	ctx := context.Background()
	d := newDrill(t, fixtureRecording("chain"))
	d.Incident.Relations = []string{"evil\x1b[2J"}
	d.Questions[0].Evidence = "evidence\x1b]0;title\x07"
	var out strings.Builder
	if _, err := train.RunLines(ctx, d, strings.NewReader("a\n"), &out); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Errorf("control characters reached the output: %q", out.String())
	}
}
