package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/cmd/internal/cli"
	"github.com/lockscope/lockscope/report/train"
)

func trainCommand() *cobra.Command {
	var (
		cfg      analyze.Config
		incident int
		lines    bool
		lf       cli.LogFlags
		tf       traineeFlags
		seed     uint64
	)
	cmd := &cobra.Command{
		Use:   "train DIR... [--incident N] [--lines] [--trainee NAME --history HDIR] | train --history HDIR [--curriculum FILE]",
		Short: "Step a trainee through a recorded incident, with questions and a score",
		Long: `Step through a recorded incident as the on-call would have lived it. At
decision points the trainee answers what the runbook asks: is the queue
growing or draining, which session first (or none), cancel or terminate,
which session must not be touched (or none of these), finish forward or roll
back. Every right answer and its evidence come from the recording up to the
question's moment only, never from what happened later; before answering,
any of the runbook's views of that moment can be shown (the replay views).
Choices are shuffled, the same way every time for a recording, so that no
letter is a strategy. The drill ends with a debrief: each answer with the
runbook step it is about, the trainee's actions beside what the recorded
on-call did, the post-mortem's root cause and what the fastest correct
containment would have spared, in waiter-seconds.

On a terminal this is a full-screen interface; with --lines, or when stdin is
not a terminal, questions are printed and answers read one per line (a
letter, the value, a view's name, help or quit), for scripts and tests.
The default incident is the one with the most waiter-seconds.

For a trainer: --trainee NAME --history HDIR appends one JSON line per drill
(train and lab alike) to HDIR/NAME.jsonl. With --history and no recording,
train summarises every trainee's progress; a --curriculum file (ordered
drills, each a lab scenario or a recording with a pass mark) adds pass or
not and the next drill due:

  {"drills": [{"lab": "idle-cron", "pass": 80},
              {"recording": "fixtures/chain/recording", "pass": 80}]}
` + cli.ExitStatusHelp,
		Example: `  lockscope train fixtures/cron-vs-alter/recording
  printf 'blocking\na\n' | lockscope train rec --lines
  lockscope train rec --trainee alice --history drills/
  lockscope train --history drills/ --curriculum curriculum.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := tf.start(cmd, &lf)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				if tf.history == "" || tf.trainee != "" {
					return cli.Usage(errors.New("name a recording directory to train on, or --history DIR alone for the trainees' progress"))
				}
				return summarizeHistory(cmd.OutOrStdout(), tf)
			}
			if incident < 0 {
				return cli.Usage(fmt.Errorf("--incident %d: want 1 or more", incident))
			}
			cfg.Dirs, cfg.Logger = args, log
			d, err := train.New(cmd.Context(), cfg, incident)
			if err != nil {
				return err
			}
			if seed != 0 {
				d.Shuffle(seed)
			}
			var score train.Score
			if !lines && isTerminal(os.Stdin) && isTerminal(os.Stdout) {
				score, err = train.RunTUI(cmd.Context(), d, os.Stdin, os.Stdout)
			} else {
				score, err = train.RunLines(cmd.Context(), d, cmd.InOrStdin(), cmd.OutOrStdout())
			}
			if err != nil || tf.trainee == "" {
				return err
			}
			drill, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			points := 0
			if len(d.Questions) > 0 {
				points = 100 * score.Right() / len(d.Questions)
			}
			return train.AppendHistory(tf.history, train.Record{Trainee: tf.trainee, At: time.Now().UTC(), Kind: train.DrillRecording,
				Drill: drill, Points: points, Missed: d.Missed(score)})
		},
	}
	cmd.Flags().IntVar(&incident, "incident", 0, "the incident to train on (default: the one with the most waiter-seconds)")
	cmd.Flags().BoolVar(&lines, "lines", false, "plain line mode: questions to stdout, answers from stdin")
	cmd.Flags().StringVar(&cfg.Cluster, "cluster", "", "the cluster when the directories hold several")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "order the choices from this seed (default: one taken from the recording, the same every time)")
	cmd.Flags().BoolVar(&cfg.Strict, "strict", false, "fail on a damaged segment instead of reading the others and listing it")
	tf.add(cmd)
	lf.Add(cmd)
	return cmd
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// traineeFlags are the trainer's flags shared by train and lab.
type traineeFlags struct {
	trainee, history, curriculum string
}

func (t *traineeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.trainee, "trainee", "", "record the drill in the trainee's history (with --history)")
	cmd.Flags().StringVar(&t.history, "history", "", "the directory of the trainees' histories (one NAME.jsonl each)")
	cmd.Flags().StringVar(&t.curriculum, "curriculum", "", "a curriculum file: ordered drills with pass marks (JSON)")
}

// start gives a trainer's command (train, lab) its logger, once the
// trainer's flags check out.
func (t *traineeFlags) start(cmd *cobra.Command, lf *cli.LogFlags) (*slog.Logger, error) {
	log, err := lf.Logger(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	return log, t.check()
}

func (t *traineeFlags) check() error {
	if t.trainee != "" {
		if t.history == "" {
			return cli.Usage(errors.New("--trainee needs --history DIR: the directory that keeps the trainees' histories"))
		}
		if err := train.ValidTrainee(t.trainee); err != nil {
			return cli.Usage(err)
		}
	}
	if t.curriculum != "" && t.history == "" {
		return cli.Usage(errors.New("--curriculum needs --history DIR: progress is read from the histories"))
	}
	return nil
}

func (t *traineeFlags) load() (*train.Curriculum, []train.Record, error) {
	var c *train.Curriculum
	if t.curriculum != "" {
		var err error
		if c, err = train.LoadCurriculum(t.curriculum); err != nil {
			return nil, nil, cli.Usage(err)
		}
	}
	records, err := train.LoadHistory(t.history)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil, nil
	}
	return c, records, err
}

func summarizeHistory(w io.Writer, t traineeFlags) error {
	c, records, err := t.load()
	if err != nil {
		return err
	}
	return train.Summarize(w, records, c)
}
