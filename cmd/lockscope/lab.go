package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/cmd/internal/cli"
	"github.com/lockscope/lockscope/fixtures/lab"
	"github.com/lockscope/lockscope/report/replay"
	"github.com/lockscope/lockscope/report/train"
)

// labOptions are lab's flags beyond lab.Config.
type labOptions struct {
	cfg     lab.Config
	jsonOut string
	lf      cli.LogFlags
	tf      traineeFlags
}

func labCommand() *cobra.Command {
	var o labOptions
	cmd := &cobra.Command{
		Use:   "lab [SCENARIO] [--seed N] [--dsn DSN] [--out DIR] [--time-limit 15m]",
		Short: "Stage a real lock incident on a throwaway PostgreSQL and score the trainee's response",
		Long:  labHelp(),
		Example: `  lockscope lab
  lockscope lab long-report --seed 7 --out drill-1/
  lockscope lab lock-chain --dsn 'host=scratch-db user=postgres dbname=drill'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runLab(cmd, args, &o) },
	}
	o.cfg.Scenario = "idle-cron"
	cmd.Flags().Uint64Var(&o.cfg.Seed, "seed", 0, "replay the drill drawn from this seed (default: a new one, printed with the score)")
	cmd.Flags().DurationVar(&o.cfg.Window, "window", time.Minute, "how long a negative control runs")
	cmd.Flags().StringVar(&o.cfg.DSN, "dsn", "", "a disposable server to stage on (default: start a throwaway local PostgreSQL)")
	cmd.Flags().StringVar(&o.cfg.Out, "out", "", "keep the drill's recording in this new directory")
	cmd.Flags().DurationVar(&o.cfg.TimeLimit, "time-limit", 15*time.Minute, "end an uncontained drill after this long")
	cmd.Flags().StringVar(&o.jsonOut, "score-json", "", "also write the score as JSON to this file (0600)")
	o.tf.add(cmd)
	o.lf.Add(cmd)
	return cmd
}

func labHelp() string {
	var list []string
	for _, s := range lab.Scenarios {
		// Which are negative controls is left out: that would be the answer.
		list = append(list, fmt.Sprintf("  %-15s %s", s.Name, s.Trains))
	}
	return `A live drill. lab starts a throwaway local PostgreSQL (or uses --dsn, a
disposable server you name: it creates tables there and runs DDL), loads an
Odoo-like schema, stages the scenario with real sessions, and prints how to
connect. The trainee works in psql exactly as in production: the runbook's
queries, pg_cancel_backend, pg_terminate_backend, ROLLBACK PREPARED.

Every run draws its names, pids, tables, timings, worker counts and decoys
(a backup, replication client or admin psql; unrelated busy sessions) from a
seed: --seed N replays one. Negative controls stage no incident at all.

lab watches the server: the trainee's queries in pg_stat_activity, what
happens to each staged session, the queue. Once the queue has drained it
asks for Step 3 here (type the letter) while looking for the Step 4
verification queries in psql. The score, by runbook step: looking before
acting, the right session first, cancel before terminate, time to
containment (full points within a minute, halving every two after),
protected sessions left alone (when one was staged), Step 3 and Step 4; each
session acted on without cause costs points by the harm done. A negative
control lasts --window and scores full marks for doing no harm and nothing.
The lab's own sessions are named lockscope-lab-... (the recorder
lockscope-capture) and survive being terminated; every drill ends with a
score, also on Ctrl-C. --out keeps a recording of the drill. --trainee NAME
--history DIR records the score in the trainee's history; with --curriculum
FILE and no scenario, lab runs the trainee's next drill not yet passed (see
train --help).

Scenarios (default idle-cron):
` + strings.Join(list, "\n") + `
` + cli.ExitStatusHelp
}

// runLab checks the flags, runs the drill, prints the debrief and keeps
// the score where the flags say.
func runLab(cmd *cobra.Command, args []string, o *labOptions) error {
	log, err := o.tf.start(cmd, &o.lf)
	if err != nil {
		return err
	}
	cfg := &o.cfg
	out := cmd.OutOrStdout()
	if len(args) == 1 {
		cfg.Scenario = args[0]
	} else if o.tf.curriculum != "" && o.tf.trainee != "" {
		next, ok, err := nextLabDrill(o.tf)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(out, "%s has passed every drill of %s.\n", o.tf.trainee, o.tf.curriculum)
			return nil
		}
		cfg.Scenario = next
	}
	if err := checkLabConfig(cfg); err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Ready = func(b lab.Brief) { brief(out, b, *cfg) }
	cfg.Ask = asker(cmd.InOrStdin(), out)
	score, err := lab.Run(cmd.Context(), *cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	if err := score.Write(out); err != nil {
		return err
	}
	if o.tf.trainee != "" {
		if err := appendLabHistory(o.tf, score); err != nil {
			return err
		}
	}
	if o.jsonOut != "" {
		return writeScoreJSON(o.jsonOut, score)
	}
	return nil
}

// nextLabDrill is the trainee's next lab scenario not yet passed in the
// curriculum; ok is false when every drill is passed.
func nextLabDrill(tf traineeFlags) (scenario string, ok bool, err error) {
	c, records, err := tf.load()
	if err != nil {
		return "", false, err
	}
	next, ok := c.Next(records, tf.trainee)
	switch {
	case !ok:
		return "", false, nil
	case next.Recording != "":
		return "", false, fmt.Errorf("the next drill for %s is a recording: lockscope train %s --trainee %s --history %s", tf.trainee, next.Recording, tf.trainee, tf.history)
	}
	return next.Lab, true, nil
}

// checkLabConfig refuses flags a drill cannot run with, and makes --out
// absolute.
func checkLabConfig(cfg *lab.Config) error {
	if _, ok := lab.Lookup(cfg.Scenario); !ok {
		return cli.Usage(fmt.Errorf("no scenario %q: pick one of %s", cfg.Scenario, strings.Join(lab.Names(), ", ")))
	}
	if cfg.Window <= 0 {
		return cli.Usage(fmt.Errorf("--window %s: want a positive duration such as 1m", cfg.Window))
	}
	if cfg.TimeLimit <= 0 {
		return cli.Usage(fmt.Errorf("--time-limit %s: want a positive duration such as 15m", cfg.TimeLimit))
	}
	if cfg.Out != "" {
		if entries, err := os.ReadDir(cfg.Out); err == nil && len(entries) > 0 {
			return cli.Usage(fmt.Errorf("--out %s is not empty: name a new directory for the drill's recording", cfg.Out))
		}
		abs, err := filepath.Abs(cfg.Out)
		if err != nil {
			return err
		}
		cfg.Out = abs
	}
	if cfg.DSN != "" {
		if _, err := pgconn.ParseConfig(cfg.DSN); err != nil {
			return cli.Usage(errors.New("--dsn: not a valid connection string (keyword=value or postgres:// URL)"))
		}
	}
	return nil
}

// appendLabHistory records the drill in the trainee's history, with the
// criteria not fully earned.
func appendLabHistory(tf traineeFlags, score *lab.Score) error {
	var missed []string
	for _, c := range score.Criteria {
		if c.Earned < c.Of {
			missed = append(missed, c.Step+": "+c.Name)
		}
	}
	if len(score.Harm) > 0 {
		missed = append(missed, "Step 2: harm")
	}
	return train.AppendHistory(tf.history, train.Record{Trainee: tf.trainee, At: time.Now().UTC(), Kind: train.DrillLab,
		Drill: score.Scenario, Seed: score.Seed, Points: score.Points, Missed: missed})
}

func writeScoreJSON(path string, score *lab.Score) error {
	data, err := json.MarshalIndent(score, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the score: %w", err)
	}
	return nil
}

// brief tells the trainee where the incident is: the connection without
// its password, and the runbook's first command.
func brief(w io.Writer, b lab.Brief, cfg lab.Config) {
	conn := b.DSN
	if cfg.DSN != "" {
		conn = capture.RedactDSN(b.DSN)
	}
	// The same words for an incident and a negative control: which one it
	// is, is for the trainee to find out.
	end := fmt.Sprintf("lab watches the server. The drill ends once the lock queue has drained and you have answered Step 3 here, or after %s if there is nothing to contain (time limit %s; Ctrl-C gives up).", b.Window, cfg.TimeLimit)
	fmt.Fprintf(w, `You are paged: the application is slow (drill %s, seed %d). On-call: handle it as the runbook says, in another terminal:

    psql "%s"

The runbook's first command (Step 0):

%s

%s
`, b.Scenario, b.Seed, conn, indent(replay.SQLActivity), end)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// asker puts the lab's questions on out and reads the answer, a letter or
// a choice's key, as one line of in.
func asker(in io.Reader, out io.Writer) func(ctx context.Context, q lab.Question) string {
	lines := make(chan string)
	started := false
	return func(ctx context.Context, q lab.Question) string {
		if !started {
			started = true
			go func() {
				sc := bufio.NewScanner(in)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
		}
		fmt.Fprintf(out, "\n%s\n", q.Prompt)
		for i, c := range q.Choices {
			fmt.Fprintf(out, "  %c) %s\n", 'a'+i, c.Text)
		}
		for {
			fmt.Fprint(out, "> ")
			select {
			case <-ctx.Done():
				fmt.Fprintln(out, "(no answer in time)")
				return ""
			case l, ok := <-lines:
				if !ok {
					return ""
				}
				l = strings.ToLower(strings.TrimSpace(l))
				for i, c := range q.Choices {
					if l == string(rune('a'+i)) || l == c.Key {
						return c.Key
					}
				}
				if l != "" {
					fmt.Fprintf(out, "%q is not one of the choices: type a letter.\n", l)
				}
			}
		}
	}
}
