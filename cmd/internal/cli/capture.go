package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
)

type captureOptions struct {
	cfg         capture.Config
	segment     string
	retainSize  string
	metricsAddr string
	tail        time.Duration
	report      string
	analysis    Analysis
	log         LogFlags
}

// captureLong and captureExample are capture's help.
const captureLong = `Record lock activity of a PostgreSQL server into a recording directory.

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

Wrap mode: with a command after --, capture records around it. It starts
recording, waits for the first full sample, runs the command with stdin,
stdout and stderr passed through and SIGINT/SIGTERM forwarded to it (a
terminal's Ctrl-C reaches it directly, and is not sent twice), records
command_start and command_end events (the command line without passwords,
its exit status and duration), records --tail more, seals the segment,
prints a summary of the window on stderr and exits with the command's exit
status (128+N when signal N killed it). A capture that cannot start (no
connection, a bad flag) runs no command and exits 1 or 2.

Guard: --guard-wait D cancels (pg_cancel_backend, never a terminate) a
session that has waited longer than D for a Share-or-stronger lock on a
relation while at least --guard-queue sessions are queued behind it: the
lock_timeout a deploy tool did not set. It never touches root blockers,
waiters for weaker locks, or anything below its bounds; each cancel is an
events row. The role needs pg_signal_backend (and pg_monitor); capture
refuses the flag at start without it. pg_signal_backend cannot cancel a
superuser's query.

--metrics-addr serves Prometheus metrics on /metrics and /healthz (200
while the last sample is at most max(3 x --probe-interval, 5s) old, 503
otherwise).
` + ExitStatusHelp + `
  N  in wrap mode: the wrapped command's exit status`

const captureExample = `  # Record a deploy, with the DSN's password taken from ~/.pgpass
  lockscope capture --dsn 'host=db1 dbname=odoo user=lockscope' --out /var/lib/lockscope/db1

  # The same through PG* variables, stopping after two hours
  PGHOST=db1 PGDATABASE=odoo PGUSER=lockscope lockscope capture --out rec --duration 2h

  # Also sample PgBouncer's pools (its admin console)
  lockscope capture --dsn 'host=db1 dbname=odoo' --pgbouncer 'host=db1 port=6432 user=pgbouncer' --out rec

  # Record around a module upgrade; cancel its DDL after 5 s in the queue
  lockscope capture --dsn 'host=db1 dbname=odoo user=lockscope' --out rec --guard-wait 5s -- \
      odoo-bin -c /etc/odoo.conf -u sale --stop-after-init`

// CaptureCommand is `capture`: the recorder, and the wrapper of a deploy
// command. analysis is the full binary's analysis of a wrapped command's
// window (nil in the lean recorder).
func CaptureCommand(analysis Analysis) *cobra.Command {
	d := capture.DefaultConfig()
	o := &captureOptions{cfg: d, analysis: analysis}
	cmd := &cobra.Command{
		Annotations: map[string]string{SignalIsStop: "capture seals its segment and exits 0"},
		Use:         "capture --out DIR [--dsn DSN] [-- COMMAND [ARGS...]]",
		Short:       "Record pg_stat_activity, pg_locks and pg_blocking_pids into a recording",
		Long:        captureLong,
		Example:     captureExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
				return Usage(fmt.Errorf("unexpected argument %q: put the command to wrap after --", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCapture(cmd, o, args)
		},
	}
	addCaptureFlags(cmd, o, d)
	cmd.MarkFlagRequired("out")
	o.log.Add(cmd)
	return cmd
}

// addCaptureFlags adds capture's flags to cmd, bound to o, with the
// defaults d; --report only where the binary has an analysis.
func addCaptureFlags(cmd *cobra.Command, o *captureOptions, d capture.Config) {
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
	f.DurationVar(&o.tail, "tail", 10*time.Second, "wrap mode: keep recording this long after the command exits")
	f.DurationVar(&c.GuardWait, "guard-wait", 0, "cancel a session waiting longer than this for a Share-or-stronger relation lock (0: no guard)")
	f.IntVar(&c.GuardQueue, "guard-queue", d.GuardQueue, "guard: only when at least this many sessions are queued behind it")
	f.StringVar(&c.GuardApplication, "guard-application", "", "guard: only sessions whose application_name matches this glob (odoo-*)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on HOST:PORT")
	if o.analysis != nil {
		f.StringVar(&o.report, "report", "", "wrap mode: write the post-mortem of the command's window into this directory")
	}
}

func runCapture(cmd *cobra.Command, o *captureOptions, args []string) error {
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
	if _, err := path.Match(o.cfg.GuardApplication, ""); err != nil {
		return Usage(fmt.Errorf("--guard-application %q: %w", o.cfg.GuardApplication, err))
	}
	if o.cfg.GuardQueue < 1 {
		return Usage(fmt.Errorf("--guard-queue %d: want at least 1", o.cfg.GuardQueue))
	}
	if o.cfg.GuardWait < 0 {
		return Usage(fmt.Errorf("--guard-wait %v: want a positive duration", o.cfg.GuardWait))
	}
	var command []string
	if n := cmd.ArgsLenAtDash(); n >= 0 {
		command = args[n:]
		if len(command) == 0 {
			return Usage(errors.New("no command after --"))
		}
	} else if o.report != "" {
		return Usage(errors.New("--report needs a command to wrap (after --)"))
	}
	if o.metricsAddr != "" {
		o.cfg.Metrics = capture.NewMetrics()
		stop, err := serveMetrics(o.metricsAddr, o.cfg.Metrics, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if command != nil {
		return runWrapped(cmd, o, log, command)
	}
	return captureError(capture.Run(cmd.Context(), o.cfg))
}

// serveMetrics listens on addr and serves the metrics until stop.
func serveMetrics(addr string, m *capture.Metrics, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, Usage(fmt.Errorf("--metrics-addr %s: %w", addr, err))
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
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
	segs, err := recording.Scan(dir)
	if err != nil {
		return err
	}
	damaged := 0
	for _, s := range segs {
		if d := s.Damage; d != nil {
			damaged++
			log.Warn("damaged segment left in place, not read", "segment", s.Meta.Segment, "file", d.File, "reason", d.Reason)
		}
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
	fmt.Fprintf(cmd.OutOrStdout(), "%d segment(s) recovered; the recording has %d segment(s)", n, len(segs)-damaged)
	if damaged > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), " and %d damaged one(s) left in place", damaged)
	}
	fmt.Fprintln(cmd.OutOrStdout())
	return nil
}
