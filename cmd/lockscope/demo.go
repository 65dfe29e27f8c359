package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/cmd/internal/cli"
	"github.com/lockscope/lockscope/fixtures/pgtest/pgserver"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

func demoCommand() *cobra.Command {
	var (
		out   string
		table string
		lf    cli.LogFlags
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Stage a lock-queue incident on a throwaway PostgreSQL, record and analyse it",
		Long: `Start a throwaway PostgreSQL server (initdb in a temporary directory, a free
port on 127.0.0.1), load an Odoo-like schema, start the recorder, and stage
the classic incident: a cron transaction idle in transaction holds
RowExclusiveLock on a hot table, a module upgrade's ALTER TABLE queues for
AccessExclusiveLock behind it, and workers queue behind the ALTER. The root
blocker is then terminated and the queue drains. The server is removed
afterwards; the recording stays, is analysed, and the paths of the recording,
postmortem.md and incident.json are printed.
` + cli.ExitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := lf.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if out == "" {
				if out, err = os.MkdirTemp("", "lockscope-demo-"); err != nil {
					return err
				}
				out = filepath.Join(out, "recording")
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "starting a throwaway PostgreSQL server…")
			srv, err := pgserver.Start(ctx, pgserver.Options{Logger: log})
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			defer srv.Stop()
			dsn, err := srv.CreateDatabase(ctx, "odoo")
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			cfg := capture.DefaultConfig()
			cfg.Out = out
			cfg.Cluster = "demo"
			cfg.Logger = log.With("component", "capture")
			fmt.Fprintf(cmd.ErrOrStderr(), "recording an incident on %s into %s…\n", table, out)
			truth, err := scenario.RecordIncident(ctx, scenario.RecordOptions{
				DSN: dsn, Capture: cfg, Hold: 4 * time.Second,
				Stage:  scenario.Options{Table: table, Workers: 12},
				Logger: log,
			})
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			segs, err := recording.List(out)
			if err != nil {
				return err
			}
			var ticks, waits int64
			var peak int32
			for _, s := range segs {
				ticks += s.Meta.Ticks
				waits += s.Meta.LockWaitTicks
				peak = max(peak, s.Meta.MaxLockWaiters)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "recorded %d samples (%d with lock waiters, at most %d waiting)\n", ticks, waits, peak)
			fmt.Fprintf(w, "root blocker: pid %d (%s, %s), idle in transaction; DDL: pid %d waited for %s on %s; %d workers queued behind it; ended: %s\n",
				truth.Root.PID, truth.Root.ApplicationName, truth.Root.Role, truth.DDL.PID, truth.DDLMode, truth.Table, len(truth.Waiters), truth.Ending)
			fmt.Fprintf(w, "recording: %s\n\n", out)
			res, err := analyze.Run(ctx, analyze.Config{Dirs: []string{out}, Logger: log})
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			report := filepath.Join(filepath.Dir(out), "analysis")
			if err := writeAnalysis(ctx, report, res); err != nil {
				return err
			}
			summarize(w, res)
			fmt.Fprintf(w, "\nwrote %s and %s\n", filepath.Join(report, "postmortem.md"), filepath.Join(report, "incident.json"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "recording directory (default: a new temporary directory)")
	cmd.Flags().StringVar(&table, "table", "stock_move", "the hot table the upgrade alters")
	lf.Add(cmd)
	return cmd
}
