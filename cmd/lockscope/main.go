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
  demo      stage an incident on a throwaway PostgreSQL and record it`,
		Version: recording.Version,
	}
	root.AddCommand(cli.CaptureCommand(), cli.RecoverCommand(), demoCommand())
	os.Exit(cli.Main(root, os.Args[1:]))
}
