package train

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/lockscope/lockscope/report/replay"
)

// RunLines runs the drill as plain lines: questions to out, answers read
// one per line from in (a choice's letter or value, a view's name to look
// at the runbook's queries at that moment, "help", or "quit"). The end of
// in ends the drill; questions not reached count as missed. It returns the
// score; the debrief has been printed.
func RunLines(ctx context.Context, d *Drill, in io.Reader, out io.Writer) (Score, error) {
	w := &errWriter{w: out}
	inc := &d.Incident
	w.printf("Training on incident %d: a lock queue on %s from %s UTC. You are paged at %s.\n",
		inc.ID, replay.Printable(strings.Join(inc.Relations, ", ")), inc.Start.Format("2006-01-02 15:04:05"), d.T(d.Paged))
	w.printf("Answer with a letter or the value. Before answering, type a view to see the runbook's query at that moment: %s; \"help\" repeats this, \"quit\" ends.\n",
		strings.Join(replay.ViewNames(), ", "))
	lines := readLines(ctx, in)
	var score Score
	done := false
	for i := range d.Questions {
		q := &d.Questions[i]
		if done {
			score.Answers = append(score.Answers, Answer{Question: i})
			continue
		}
		w.printf("\n== %s (%s UTC): %d sessions waiting ==\n", d.T(q.At), q.At.Format("15:04:05.000"), q.Waiting)
		w.printf("Question %d of %d: %s\n", i+1, len(d.Questions), q.Prompt)
		for j, c := range q.Choices {
			w.printf("  %c) %s\n", 'a'+j, replay.Printable(c.Text))
		}
		for {
			w.printf("> ")
			if w.err != nil {
				return score, w.err
			}
			var line string
			var ok bool
			select {
			case <-ctx.Done():
				return score, ctx.Err()
			case line, ok = <-lines:
			}
			if !ok {
				done = true
				w.printf("\n")
				score.Answers = append(score.Answers, Answer{Question: i})
				break
			}
			text := strings.TrimSpace(line)
			switch low := strings.ToLower(text); {
			case low == "":
				continue
			case low == "quit" || low == "q" || low == "exit":
				done = true
				score.Answers = append(score.Answers, Answer{Question: i})
			case low == "help" || low == "?":
				w.printf("A letter (a, b, …) or the value (a pid, cancel, growing…); or a view: %s.\n", strings.Join(replay.ViewNames(), ", "))
				continue
			default:
				if _, ok := replay.LookupView(low); ok {
					f, err := d.Frame(ctx, q.At)
					if err != nil {
						return score, err
					}
					if err := replay.Render(w, f, []string{low}); err != nil {
						return score, err
					}
					continue
				}
				key, right, valid := d.Check(i, text)
				if !valid {
					w.printf("%q is not one of the choices: type a letter, a value, a view or help.\n", text)
					continue
				}
				score.Answers = append(score.Answers, Answer{Question: i, Given: key, Right: right})
				if right {
					w.printf("Right. %s\n", replay.Printable(q.Evidence))
				} else {
					w.printf("Not quite: the answer is %s) %s. %s\n", d.Letter(i, q.Answer), q.Answer, replay.Printable(q.Evidence))
				}
			}
			break
		}
	}
	w.printf("\n%s", d.Debrief(score))
	return score, w.err
}

// readLines reads in line by line on a goroutine of its own, so that a
// cancelled drill (Ctrl-C) ends at once rather than when the next line
// comes. The channel closes at the end of the input or a read error; the
// goroutine stays blocked in a read of an open terminal until the process
// exits.
func readLines(ctx context.Context, in io.Reader) <-chan string {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return lines
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
