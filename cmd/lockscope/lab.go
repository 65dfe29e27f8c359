package main

import (
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

	"github.com/lockscope/lockscope/cmd/internal/cli"
	"github.com/lockscope/lockscope/fixtures/lab"
	"github.com/lockscope/lockscope/fixtures/scenario"
	"github.com/lockscope/lockscope/report/replay"
)

func labCommand() *cobra.Command {
	var (
		cfg     lab.Config
		jsonOut string
		lf      cli.LogFlags
	)
	var list []string
	for _, s := range scenario.Scenarios {
		list = append(list, fmt.Sprintf("  %-22s %s", s.Name, s.Description))
	}
	cmd := &cobra.Command{
		Use:   "lab [SCENARIO] [--dsn DSN] [--out DIR] [--time-limit 15m]",
		Short: "Stage a real lock-queue incident on a throwaway PostgreSQL and score the trainee's response",
		Long: `A live drill. lab starts a throwaway local PostgreSQL (or uses --dsn, a
disposable server you name: it creates tables there and runs DDL), loads an
Odoo-like schema, starts the recorder, stages the incident with real
sessions, and prints how to connect. The trainee works in psql exactly as in
production: the runbook's queries, pg_cancel_backend, pg_terminate_backend.

When the lock queue has drained (or at the time limit, or on Ctrl-C) lab
stops the workload, analyses the recording of the drill and scores the
response: time to containment, the right pid first, cancel before
terminate, no protected session touched, no collateral, and waiter-seconds
against the best possible. Everything it started is cleaned up, also on
Ctrl-C; --out keeps the drill's recording for replay and train.

Scenarios (default cron-vs-alter):
` + strings.Join(list, "\n") + `
` + cli.ExitStatusHelp,
		Example: `  lockscope lab
  lockscope lab report-vs-alter --out drill-1/
  lockscope lab chain --dsn 'host=scratch-db user=postgres dbname=drill'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := lf.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				cfg.Scenario = args[0]
			}
			if _, ok := scenario.Lookup(cfg.Scenario); !ok {
				return cli.Usage(fmt.Errorf("no scenario %q: pick one of %s", cfg.Scenario, strings.Join(lab.Names(), ", ")))
			}
			if cfg.TimeLimit <= 0 {
				return cli.Usage(fmt.Errorf("--time-limit %s: want a positive duration such as 15m", cfg.TimeLimit))
			}
			if cfg.Out != "" {
				if entries, err := os.ReadDir(cfg.Out); err == nil && len(entries) > 0 {
					return cli.Usage(fmt.Errorf("--out %s is not empty: name a new directory for the drill's recording", cfg.Out))
				}
				if cfg.Out, err = filepath.Abs(cfg.Out); err != nil {
					return err
				}
			}
			if cfg.DSN != "" {
				if _, err := pgconn.ParseConfig(cfg.DSN); err != nil {
					return cli.Usage(errors.New("--dsn: not a valid connection string (keyword=value or postgres:// URL)"))
				}
			}
			out := cmd.OutOrStdout()
			cfg.Logger = log
			cfg.Ready = func(b lab.Brief) { brief(out, b, cfg) }
			score, err := lab.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(out)
			if err := score.Write(out); err != nil {
				return err
			}
			if jsonOut != "" {
				data, err := json.MarshalIndent(score, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(jsonOut, append(data, '\n'), 0o600); err != nil {
					return fmt.Errorf("write the score: %w", err)
				}
			}
			return nil
		},
	}
	cfg.Scenario = "cron-vs-alter"
	cmd.Flags().StringVar(&cfg.DSN, "dsn", "", "a disposable server to stage on (default: start a throwaway local PostgreSQL)")
	cmd.Flags().StringVar(&cfg.Out, "out", "", "keep the drill's recording in this new directory")
	cmd.Flags().DurationVar(&cfg.TimeLimit, "time-limit", 15*time.Minute, "end an uncontained drill after this long")
	cmd.Flags().StringVar(&jsonOut, "score-json", "", "also write the score as JSON to this file (0600)")
	lf.Add(cmd)
	return cmd
}

// brief tells the trainee where the incident is: the connection without
// its password, and the runbook's first command.
func brief(w io.Writer, b lab.Brief, cfg lab.Config) {
	conn := b.DSN
	if cfg.DSN != "" {
		conn = redact(b.DSN)
	}
	fmt.Fprintf(w, `An incident is under way. On-call: contain it as the runbook says, in another terminal:

    psql "%s"

The runbook's first command (Step 0):

%s

lab watches the server and stops once the lock queue has drained (time limit %s; Ctrl-C gives up).
`, conn, indent(replay.SQLActivity), cfg.TimeLimit)
}

// redact rebuilds a connection string without its password.
func redact(dsn string) string {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(the --dsn server)"
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s", c.Host, c.Port, c.User, c.Database)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
