// Command lockscope-capture is the lean recorder for database hosts: the
// capture and recover commands of lockscope without any analysis or
// rendering code linked in.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/cmd/internal/cli"
)

func main() {
	root := &cobra.Command{
		Use:     "lockscope-capture",
		Short:   "Record PostgreSQL lock-queue incidents (the recorder only)",
		Version: recording.Version,
	}
	capture := cli.CaptureCommand(nil)
	// `lockscope-capture --out DIR` and `lockscope-capture capture --out DIR`
	// both work.
	root.Flags().AddFlagSet(capture.Flags())
	root.PersistentFlags().AddFlagSet(capture.PersistentFlags())
	root.Long = capture.Long
	root.Example = capture.Example
	root.Args = capture.Args
	root.RunE = capture.RunE
	root.Annotations = capture.Annotations
	root.AddCommand(cli.CaptureCommand(nil), cli.RecoverCommand())
	os.Exit(cli.Main(root, os.Args[1:]))
}
