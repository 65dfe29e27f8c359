package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/lockscope/lockscope/analyze"
)

// analyzeWindow is the full binary's part of `capture -- COMMAND`: the
// analysis of the command's window, one line per incident on w, and the
// post-mortem in reportDir when set.
func analyzeWindow(ctx context.Context, dir string, since, until time.Time, reportDir string, w io.Writer) error {
	res, err := analyze.Run(ctx, analyze.Config{Dirs: []string{dir}, Since: since, Until: until})
	if err != nil {
		return err
	}
	if len(res.Incidents) == 0 {
		fmt.Fprintln(w, "lockscope: analysis: no lock-queue incident in the window")
	}
	for _, inc := range res.Incidents {
		fmt.Fprintf(w, "lockscope: incident %d: %s, peak %d waiting, %.1f waiter-seconds", inc.ID, inc.Kind, inc.PeakWaiters, inc.WaiterSeconds)
		for _, r := range inc.RootBlockers {
			fmt.Fprintf(w, "; root blocker pid %d (%s, %s): %s", r.PID, r.ApplicationName, r.State, oneLine(r.Query, 80))
		}
		if d := inc.DDL; d != nil {
			fmt.Fprintf(w, "; DDL pid %d (%s) %s on %s waited %.1f s, %s: %s", d.PID, d.ApplicationName, d.Mode, d.Relation, d.Waited, d.Outcome, oneLine(d.Query, 80))
		}
		fmt.Fprintln(w)
	}
	if reportDir == "" {
		return nil
	}
	if err := writeAnalysis(ctx, reportDir, res); err != nil {
		return err
	}
	fmt.Fprintf(w, "lockscope: wrote %s\n", filepath.Join(reportDir, "postmortem.md"))
	return nil
}
