package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/cmd/internal/cli"
	"github.com/lockscope/lockscope/report/replay"
)

func replayCommand() *cobra.Command {
	var (
		o  replay.Options
		lf cli.LogFlags
	)
	cmd := &cobra.Command{
		Use:   "replay DIR... [--at TIME] [--step 5s] [--view NAME]",
		Short: "Show what the runbook's psql queries would have printed at a moment of a recording",
		Long: `Show a moment of a recording the way the on-call runbook's own queries would
have shown it live: the Step 0 activity snapshot, the Step 1 waiting-vs-granted
locks, the AccessExclusive focus, the blocking graph and the Step 4
verification counts, with the runbook's columns and order, as psql prints
them. Each moment shows the last full sample at or before it; now() is that
sample's time. The recorder's own session is left out.

TIME is start, peak or end (of the incident, --incident N; of the recording
when it has none), T+95s or T-5s from the incident's start, an RFC 3339 time,
"2026-11-24 09:00:05" or "09:00:05" (UTC). --step walks from --at to --until
(default: the incident's end).

Views: ` + strings.Join(replay.ViewNames(), ", ") + `.
` + cli.ExitStatusHelp,
		Example: `  lockscope replay rec --at peak
  lockscope replay rec --at T+95s --view blocking
  lockscope replay rec --at start --step 5s --view verify`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := lf.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o.Dirs, o.Logger = args, log
			for _, v := range o.Views {
				if _, ok := replay.LookupView(v); !ok {
					return cli.Usage(fmt.Errorf("--view %q: pick one of %s", v, strings.Join(replay.ViewNames(), ", ")))
				}
			}
			for _, spec := range []string{o.At, o.Until} {
				if _, err := replay.ParseTime(spec, replay.Ref{}); err != nil {
					return cli.Usage(err)
				}
			}
			if o.Step < 0 {
				return cli.Usage(fmt.Errorf("--step %s: want a positive duration such as 5s", o.Step))
			}
			return replay.Run(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.At, "at", "start", "the moment to show (start, peak, end, T+95s, 09:00:05, RFC 3339)")
	cmd.Flags().DurationVar(&o.Step, "step", 0, "walk from --at to --until, a moment every STEP")
	cmd.Flags().StringVar(&o.Until, "until", "", "where a --step walk ends (default: the incident's end)")
	cmd.Flags().IntVar(&o.Incident, "incident", 0, "the incident relative times refer to (default 1)")
	cmd.Flags().StringSliceVar(&o.Views, "view", nil, "show only these views (repeat or comma-separate)")
	cmd.Flags().StringVar(&o.Cluster, "cluster", "", "the cluster to replay when the directories hold several")
	cmd.Flags().BoolVar(&o.Strict, "strict", false, "fail on a damaged segment instead of reading the others and listing it")
	lf.Add(cmd)
	return cmd
}
