package train_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/report/train"
)

func fixtureRecordings(t *testing.T) []string {
	t.Helper()
	recs, err := filepath.Glob("../../fixtures/*/recording")
	if err != nil || len(recs) == 0 {
		t.Fatalf("no recorded fixtures: %v", err)
	}
	return recs
}

// fixtureRecording is the directory of the recorded fixture name.
func fixtureRecording(name string) string {
	return filepath.Join("..", "..", "fixtures", name, "recording")
}

// newDrill prepares a drill on the recording in dir, on its incident with
// the most waiter-seconds.
func newDrill(t *testing.T, dir string) *train.Drill {
	t.Helper()
	d, err := train.New(context.Background(), analyze.Config{Dirs: []string{dir}}, 0)
	if err != nil {
		t.Fatalf("drill on %s: %v", dir, err)
	}
	return d
}

// Answering "a" to everything is no strategy: over the recorded fixtures
// it scores at most 40 %.
func TestTrainAllAOverFixtures(t *testing.T) {
	ctx := context.Background()
	right, total := 0, 0
	for _, rec := range fixtureRecordings(t) {
		d := newDrill(t, rec)
		var out strings.Builder
		score, err := train.RunLines(ctx, d, strings.NewReader(strings.Repeat("a\n", len(d.Questions))), &out)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d of %d", rec, score.Right(), len(d.Questions))
		right += score.Right()
		total += len(d.Questions)
	}
	if total == 0 || 100*right > 40*total {
		t.Errorf("all-a scored %d of %d", right, total)
	}
}

// Every question is fair at its moment: cut the recording right after the
// question's moment, and its right answer does not change. The trend is
// asked only with two samples to compare; "must not touch" always offers
// "none of these"; "none" is an answer to "which session first".
func TestTrainNoHindsight(t *testing.T) {
	ctx := context.Background()
	for _, rec := range fixtureRecordings(t) {
		t.Run(filepath.Base(filepath.Dir(rec)), func(t *testing.T) {
			d := newDrill(t, rec)
			for _, q := range d.Questions {
				cut, err := train.New(ctx, analyze.Config{Dirs: []string{rec}, Until: q.At.Add(time.Microsecond)}, d.Incident.ID)
				if err != nil {
					t.Fatalf("cut at %s: %v", d.T(q.At), err)
				}
				found := false
				for _, c := range cut.Questions {
					if c.Kind == q.Kind {
						found = true
						if !c.At.Equal(q.At) || c.Answer != q.Answer || c.Evidence != q.Evidence {
							t.Errorf("%s at %s: %q (%s), cut right after it: %q at %s (%s)", q.Kind, d.T(q.At), q.Answer, q.Evidence, c.Answer, cut.T(c.At), c.Evidence)
						}
					}
				}
				if !found {
					t.Errorf("%s at %s: not asked when the recording is cut right after it", q.Kind, d.T(q.At))
				}
				keys := map[string]bool{}
				for _, c := range q.Choices {
					keys[c.Key] = true
				}
				if !keys[q.Answer] {
					t.Errorf("%s: the answer %q is not among the choices %+v", q.Kind, q.Answer, q.Choices)
				}
				if (q.Kind == train.KindHandsOff || q.Kind == train.KindFirstPID) && !keys[train.KeyNone] {
					t.Errorf("%s offers no \"none\": %+v", q.Kind, q.Choices)
				}
			}
		})
	}
}

// The same seed gives the same order of choices; another seed another
// order, with the same right answers.
func TestTrainShuffleSeed(t *testing.T) {
	orders := map[uint64]string{}
	for _, seed := range []uint64{1, 2, 1} {
		d := newDrill(t, fixtureRecording("dump-vs-alter-cancelled"))
		d.Shuffle(seed)
		var b strings.Builder
		for i, q := range d.Questions {
			for _, c := range q.Choices {
				b.WriteString(c.Key + ",")
			}
			b.WriteString(d.Letter(i, q.Answer) + ";")
		}
		if prev, ok := orders[seed]; ok && prev != b.String() {
			t.Errorf("seed %d: %s, then %s", seed, prev, b.String())
		}
		orders[seed] = b.String()
	}
	if orders[1] == orders[2] {
		t.Errorf("seeds 1 and 2 give the same order: %s", orders[1])
	}
}
