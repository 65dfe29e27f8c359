// Command lockscope records and explains PostgreSQL lock-queue incidents.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/cmd/internal/cli"
)

func main() {
	root := &cobra.Command{
		Use:   "lockscope",
		Short: "Record and explain PostgreSQL lock-queue incidents",
		Long: `lockscope records PostgreSQL lock-queue incidents and explains them.

  capture   record pg_stat_activity, pg_locks and pg_blocking_pids into a recording
  recover   seal the open segment a killed recorder left behind
  analyze   explain the lock-queue incidents of a recording
  replay    show what the runbook's psql queries would have printed at a moment
  train     step a trainee through a recorded incident, with questions and a score
  lab       stage a real incident on a throwaway PostgreSQL and score the response
  demo      stage an incident on a throwaway PostgreSQL, record and analyse it`,
		Version: recording.Version,
	}
	root.AddCommand(cli.CaptureCommand(analyzeWindow), cli.RecoverCommand(), analyzeCommand(), replayCommand(), trainCommand(), labCommand(), demoCommand())
	os.Exit(cli.Main(root, os.Args[1:]))
}
