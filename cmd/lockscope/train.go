package main

import (
	"fmt"
	"os"

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
	)
	cmd := &cobra.Command{
		Use:   "train DIR... [--incident N] [--lines]",
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
` + cli.ExitStatusHelp,
		Example: `  lockscope train fixtures/cron-vs-alter/recording
  printf 'blocking\na\n' | lockscope train rec --lines`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := lf.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if incident < 0 {
				return cli.Usage(fmt.Errorf("--incident %d: want 1 or more", incident))
			}
			cfg.Dirs, cfg.Logger = args, log
			d, err := train.New(cmd.Context(), cfg, incident)
			if err != nil {
				return err
			}
			if !lines && isTerminal(os.Stdin) && isTerminal(os.Stdout) {
				_, err = train.RunTUI(cmd.Context(), d, os.Stdin, os.Stdout)
				return err
			}
			_, err = train.RunLines(cmd.Context(), d, cmd.InOrStdin(), cmd.OutOrStdout())
			return err
		},
	}
	cmd.Flags().IntVar(&incident, "incident", 0, "the incident to train on (default: the one with the most waiter-seconds)")
	cmd.Flags().BoolVar(&lines, "lines", false, "plain line mode: questions to stdout, answers from stdin")
	cmd.Flags().StringVar(&cfg.Cluster, "cluster", "", "the cluster when the directories hold several")
	lf.Add(cmd)
	return cmd
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
