package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
)

type captureOptions struct {
	cfg        capture.Config
	segment    string
	retainSize string
	log        LogFlags
}

// CaptureCommand is `capture`: the recorder.
func CaptureCommand() *cobra.Command {
	d := capture.DefaultConfig()
	o := &captureOptions{cfg: d}
	cmd := &cobra.Command{
		Use:   "capture --out DIR [--dsn DSN]",
		Short: "Record pg_stat_activity, pg_locks and pg_blocking_pids into a recording",
		Long: `Record lock activity of a PostgreSQL server into a recording directory.

capture keeps one read-only connection with short statement and lock
timeouts. It counts lock waiters every --probe-interval, takes a full snapshot
(pg_stat_activity, pg_locks, pg_blocking_pids for lock waiters) every
--full-interval, and every --burst-interval while backends wait on locks.
Samples are appended to a crash-safe journal and sealed into Parquet segments
on rotation; a killed recorder loses at most the sample it was writing, and
the next start (or 'lockscope recover DIR') seals what it left.

The connection takes a libpq DSN or URL, or the PG* environment variables
and ~/.pgpass when --dsn is empty. The role needs only pg_monitor (without
pg_read_all_stats, other roles' query text and wait events are hidden).
Passwords are never written to the recording, logs or errors.

If the server goes away the recorder keeps running, reconnects with backoff,
and records the gap. SIGINT or SIGTERM seal the open segment and exit 0.
` + ExitStatusHelp,
		Example: `  # Record a deploy, with the DSN's password taken from ~/.pgpass
  lockscope capture --dsn 'host=db1 dbname=odoo user=lockscope' --out /var/lib/lockscope/db1

  # The same through PG* variables, stopping after two hours
  PGHOST=db1 PGDATABASE=odoo PGUSER=lockscope lockscope capture --out rec --duration 2h

  # Also sample PgBouncer's pools (its admin console)
  lockscope capture --dsn 'host=db1 dbname=odoo' --pgbouncer 'host=db1 port=6432 user=pgbouncer' --out rec`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCapture(cmd, o)
		},
	}
	f := cmd.Flags()
	c := &o.cfg
	f.StringVar(&c.DSN, "dsn", "", "PostgreSQL DSN or URL (default: PG* environment variables and ~/.pgpass)")
	f.StringVarP(&c.Out, "out", "o", "", "recording directory (created 0700; files 0600)")
	f.StringVar(&c.Cluster, "cluster", "", "cluster name in the recording's partitions (default: the server's system identifier)")
	f.StringVar(&c.PgBouncerDSN, "pgbouncer", "", "PgBouncer admin console DSN: sample SHOW POOLS and SHOW SERVERS")
	f.DurationVar(&c.ProbeInterval, "probe-interval", d.ProbeInterval, "period of the cheap lock-waiter count")
	f.DurationVar(&c.FullInterval, "full-interval", d.FullInterval, "period of full snapshots while no backend waits on a lock")
	f.DurationVar(&c.BurstInterval, "burst-interval", d.BurstInterval, "period of full snapshots while backends wait on locks")
	f.DurationVar(&c.BurstHold, "burst-hold", d.BurstHold, "keep the burst rate this long after the last lock waiter")
	f.IntVar(&c.BurstThreshold, "burst-threshold", d.BurstThreshold, "lock waiters that switch to the burst rate")
	f.DurationVar(&c.OdooInterval, "odoo-interval", d.OdooInterval, "period of the Odoo ir_module_module poll (when the table exists)")
	f.IntVar(&c.QueryMax, "query-max", d.QueryMax, "bytes of query text kept per backend")
	f.DurationVar(&c.SegmentDuration, "segment-duration", d.SegmentDuration, "rotate the open segment after this long")
	f.StringVar(&o.segment, "segment-size", "64MiB", "rotate the open segment when its journal reaches this size")
	f.StringVar(&o.retainSize, "retain-size", "2GiB", "remove old segments past this total size, quiet ones first (0: no limit)")
	f.DurationVar(&c.RetainAge, "retain-age", d.RetainAge, "remove quiet segments older than this (0: keep)")
	f.DurationVar(&c.RetainIncidentAge, "retain-incident-age", d.RetainIncidentAge, "remove segments with lock waits older than this (0: keep)")
	f.DurationVar(&c.Duration, "duration", 0, "stop by itself after this long (0: until SIGINT/SIGTERM)")
	f.DurationVar(&c.StatementTimeout, "statement-timeout", d.StatementTimeout, "statement_timeout of the recorder's session")
	f.DurationVar(&c.LockTimeout, "lock-timeout", d.LockTimeout, "lock_timeout of the recorder's session")
	f.DurationVar(&c.ReconnectMax, "reconnect-max", d.ReconnectMax, "longest wait between reconnection attempts")
	cmd.MarkFlagRequired("out")
	o.log.Add(cmd)
	return cmd
}

func runCapture(cmd *cobra.Command, o *captureOptions) error {
	log, err := o.log.Logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if o.cfg.SegmentBytes, err = ParseSize(o.segment); err != nil {
		return Usage(fmt.Errorf("--segment-size: %w", err))
	}
	if o.cfg.RetainBytes, err = ParseSize(o.retainSize); err != nil {
		return Usage(fmt.Errorf("--retain-size: %w", err))
	}
	o.cfg.Logger = log.With("component", "capture")
	err = capture.Run(cmd.Context(), o.cfg)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, capture.ErrConnect):
		return fmt.Errorf("capture: %w (check --dsn, the PG* variables or ~/.pgpass)", err)
	case errors.Is(err, recording.ErrLocked):
		return fmt.Errorf("capture: %w: stop the other capture or choose another --out", err)
	}
	return fmt.Errorf("capture: %w", err)
}

// RecoverCommand is `recover`: seal what a killed recorder left open.
func RecoverCommand() *cobra.Command {
	var lf LogFlags
	cmd := &cobra.Command{
		Use:   "recover DIR",
		Short: "Seal the open segment a stopped recorder left in a recording",
		Long: `Seal the journals a recorder left behind when it was killed or its disk
filled up, turning them into valid Parquet segments, and rebuild the
recording's manifest. A capture does this itself when it starts; recover is
for a recording that is copied away or analysed without restarting capture.
It refuses to run while a capture is writing the directory.
` + ExitStatusHelp,
		Example: "  lockscope recover /var/lib/lockscope/db1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := lf.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runRecover(cmd, args[0], log)
		},
	}
	lf.Add(cmd)
	return cmd
}

func runRecover(cmd *cobra.Command, dir string, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("recover: %s is not a directory", dir)
	}
	unlock, err := recording.LockDir(dir)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	defer unlock()
	results, err := recording.Recover(dir)
	if err != nil {
		return err
	}
	segs, err := recording.List(dir)
	if err != nil {
		return err
	}
	if err := recording.WriteManifest(dir, segs); err != nil {
		return err
	}
	n := 0
	for _, r := range results {
		if r.Empty {
			continue
		}
		n++
		if r.Damage != "" {
			log.Warn("sealed up to a damaged record", "segment", r.Segment.Meta.Segment, "damage", r.Damage)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "sealed %s: %d samples, %s to %s\n", r.Segment.Meta.Segment, r.Segment.Meta.Ticks,
			time.UnixMicro(r.Segment.Meta.StartUS).UTC().Format(time.RFC3339), time.UnixMicro(r.Segment.Meta.EndUS).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d segment(s) recovered; the recording has %d segment(s)\n", n, len(segs))
	return nil
}
