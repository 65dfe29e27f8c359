package train

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/lockscope/lockscope/analyze"
)

func press(m *model, keys ...string) {
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "down":
			msg = tea.KeyPressMsg{Code: tea.KeyDown}
		default:
			msg = tea.KeyPressMsg{Code: rune(k[0]), Text: k}
		}
		m.Update(msg)
	}
}

// The full-screen model: views switch with 1–6, an answer shows its
// verdict and evidence, enter moves on, and the score follows.
func TestTUIModel(t *testing.T) {
	ctx := context.Background()
	d, err := New(ctx, analyze.Config{Dirs: []string{"../../fixtures/create-index-pgdump/recording"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(ctx, d)
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if v := m.View().Content; !strings.Contains(v, "waiting_pid") || !strings.Contains(v, d.Questions[0].Prompt) {
		t.Fatalf("first screen lacks the blocking view or the question:\n%s", v)
	}
	press(m, "5")
	if v := m.View().Content; !strings.Contains(v, "lock_waiters") {
		t.Errorf("key 5 did not show the verify view:\n%s", v)
	}
	press(m, "6")
	if v := m.View().Content; !strings.Contains(v, "gid") {
		t.Errorf("key 6 did not show the prepared view:\n%s", v)
	}
	for i, q := range d.Questions {
		press(m, d.Letter(i, q.Answer))
		if v := m.View().Content; !strings.Contains(v, "Right.") {
			t.Errorf("question %d: no verdict after the right letter:\n%s", i+1, v)
		}
		press(m, "enter")
	}
	if !m.done || m.score.Right() != len(d.Questions) {
		t.Errorf("done %v, score %d of %d", m.done, m.score.Right(), len(d.Questions))
	}
}

// The program itself, fed keystrokes through a pipe as a terminal would:
// one wrong answer, then q, which ends it with the debrief.
func TestRunTUI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := New(ctx, analyze.Config{Dirs: []string{"../../fixtures/cron-vs-alter/recording"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "a"
	if d.Questions[0].Answer == d.Questions[0].Choices[0].Key {
		wrong = "b"
	}
	r, w := io.Pipe()
	go func() {
		for _, k := range []string{"4", wrong, "\r", "q"} {
			time.Sleep(100 * time.Millisecond)
			w.Write([]byte(k))
		}
	}()
	var out strings.Builder
	score, err := RunTUI(ctx, d, r, &out)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(score.Answers) != len(d.Questions) || score.Right() != 0 || score.Answers[0].Given == "" {
		t.Errorf("score %+v", score)
	}
	if !strings.Contains(out.String(), "Score: 0 of ") || !strings.Contains(out.String(), "What happened: ") {
		t.Errorf("no debrief after the full screen:\n%q", out.String())
	}
}
