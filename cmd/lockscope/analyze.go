package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/cmd/internal/cli"
	"github.com/lockscope/lockscope/report"
)

func analyzeCommand() *cobra.Command {
	var (
		out, since, until string
		cfg               analyze.Config
		lf                cli.LogFlags
	)
	cmd := &cobra.Command{
		Use:   "analyze DIR... [-o OUTDIR]",
		Short: "Explain the lock-queue incidents of a recording",
		Long: `Replay a recording offline, rebuild each sample's wait-for graph, and find
the incidents: when the queue formed and drained, the root blockers and the
waiter-seconds each caused, the DDL at the heart of it and how it ended.

A short summary goes to stdout; with -o, OUTDIR/postmortem.md is the
post-mortem in Markdown, OUTDIR/incident.json holds the
whole result (schema_version ` + fmt.Sprint(analyze.SchemaVersion) + `), and OUTDIR/tables/ the derived
tables as Parquet (incidents, queue depth per relation per sample, every
wait-for edge with its kind) for DuckDB or Spark. The post-mortem's Graphviz
pictures come from lockscope-render, which must be installed beside this
binary (make build does); it caches its compiled code only in the user's
private ~/.cache/lockscope. Several directories are analysed as one
timeline; --since and --until (RFC 3339, UTC) cut a window.

A damaged segment (a truncated file, a file of another tool) is left out:
it is named in a warning on stderr, in incident.json (recording.damaged)
and in the post-mortem's data-quality appendix, and the others are read.
--strict makes it an error.
` + cli.ExitStatusHelp,
		Example: `  lockscope analyze /var/lib/lockscope/db1 -o postmortem/
  lockscope analyze rec --since 2026-11-24T09:00:00Z --until 2026-11-24T10:00:00Z`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := lf.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.Dirs, cfg.Logger = args, log
			for _, t := range []struct {
				flag string
				s    string
				dst  *time.Time
			}{{"--since", since, &cfg.Since}, {"--until", until, &cfg.Until}} {
				if t.s == "" {
					continue
				}
				if *t.dst, err = time.Parse(time.RFC3339, t.s); err != nil {
					return cli.Usage(fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-11-24T09:00:00Z", t.flag, t.s))
				}
			}
			res, err := analyze.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if out != "" {
				if err := writeAnalysis(cmd.Context(), out, res); err != nil {
					return err
				}
			}
			summarize(cmd.OutOrStdout(), res)
			if out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "\nwrote %s and %s\n", filepath.Join(out, "postmortem.md"), filepath.Join(out, "incident.json"))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "directory for incident.json (created 0700)")
	cmd.Flags().StringVar(&since, "since", "", "analyse from this time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "analyse up to this time (RFC 3339)")
	cmd.Flags().StringVar(&cfg.Cluster, "cluster", "", "the cluster to analyse when the directories hold several")
	cmd.Flags().DurationVar(&cfg.MinDuration, "min-duration", time.Second, "ignore lock waits shorter than this")
	cmd.Flags().BoolVar(&cfg.Strict, "strict", false, "fail on a damaged segment instead of reading the others and listing it")
	lf.Add(cmd)
	return cmd
}

// writeAnalysis writes the whole analysis tree into dir: incident.json,
// the derived tables and the post-mortem with its pictures. analyze -o,
// demo and a wrapped deploy's --report all write this same tree.
func writeAnalysis(ctx context.Context, dir string, res *analyze.Result) error {
	if err := writeJSON(dir, res); err != nil {
		return err
	}
	if err := analyze.WriteTables(filepath.Join(dir, "tables"), res, nil); err != nil {
		return err
	}
	return report.Write(ctx, dir, res)
}

func writeJSON(dir string, res *analyze.Result) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write incident.json: %w", err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("write incident.json: %w", err)
	}
	return recording.WriteFileAtomic(filepath.Join(dir, "incident.json"), append(b, '\n'))
}

// summarize prints a few lines per incident.
func summarize(w io.Writer, res *analyze.Result) {
	rec := res.Recording
	fmt.Fprintf(w, "recording: %s to %s UTC, %d samples (%d full), PostgreSQL %s, %d gap(s)\n",
		rec.Start.Format("2006-01-02 15:04:05"), rec.End.Format("15:04:05"), rec.Ticks, rec.FullTicks, rec.ServerVersion, len(rec.Gaps))
	if len(res.Incidents) == 0 {
		fmt.Fprintln(w, "no lock-queue incidents")
		return
	}
	for _, inc := range res.Incidents {
		end := "not drained when the recording ends"
		if inc.End != nil {
			end = "drained " + inc.End.Format("15:04:05")
		}
		fmt.Fprintf(w, "\nincident %d: %s on %s, %s to %s (%.1f s)\n", inc.ID, inc.Kind, strings.Join(inc.Relations, ", "),
			inc.Start.Format("15:04:05"), end, inc.Duration)
		fmt.Fprintf(w, "  peak %d waiting at %s, %.1f waiter-seconds\n", inc.PeakWaiters, inc.PeakAt.Format("15:04:05"), inc.WaiterSeconds)
		for _, r := range inc.RootBlockers {
			until := r.LastSeen
			if r.Gone != nil {
				until = *r.Gone
			}
			blocked := until.Sub(r.FirstSeen).Seconds()
			if r.GID != "" {
				fmt.Fprintf(w, "  root blocker: prepared transaction %q (no backend; owner %s, database %s), prepared %.1f s before, blocked %.1f s, %.1f waiter-seconds behind it\n",
					r.GID, r.User, r.Database, r.TransactionAge, blocked, r.WaiterSeconds)
				continue
			}
			fmt.Fprintf(w, "  root blocker: pid %d (%s), %s, transaction %.1f s old when first seen blocking, blocked %.1f s, %.1f waiter-seconds behind it: %s\n",
				r.PID, r.ApplicationName, r.State, r.TransactionAge, blocked, r.WaiterSeconds, oneLine(r.Query, 100))
		}
		if d := inc.Deadlock; d != nil {
			var cycle []string
			for _, m := range d.Members {
				cycle = append(cycle, fmt.Sprintf("pid %d waits for %s", m.PID, m.WaitsFor))
			}
			fmt.Fprintf(w, "  deadlock: %s; victim pid %d\n", strings.Join(cycle, " → "), d.Victim)
		}
		if c := inc.Contention; c != nil && c.Churn {
			fmt.Fprintf(w, "  churn on %s: %d transactions took turns, %d waits, max %.3f s, p95 %.3f s: no session to act on\n",
				c.Object, c.ChurnHolders, c.Waits, c.MaxWait, c.P95Wait)
		}
		if d := inc.DDL; d != nil {
			fmt.Fprintf(w, "  DDL: pid %d (%s) %s on %s, waited %.1f s, %s: %s\n", d.PID, d.ApplicationName, d.Mode, d.Relation, d.Waited, d.Outcome, oneLine(d.Query, 100))
		}
		if len(inc.Actions) > 0 && inc.Actions[0].SQL != "" {
			a := inc.Actions[0]
			fmt.Fprintf(w, "  first action: %s: %s\n", a.Action, a.SQL)
		}
	}
}

// oneLine is recording.OneLine: one line, cut at a character boundary.
func oneLine(s string, n int) string { return recording.OneLine(s, n) }
