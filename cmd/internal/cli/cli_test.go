package cli

import (
	"errors"
	"os/exec"
	"testing"

	"github.com/spf13/cobra"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "512MiB": 512 << 20, "2GiB": 2 << 30, "100MB": 100e6, "1.5KiB": 1536,
		" 64 MiB ": 64 << 20, "10K": 10 << 10, "1T": 1 << 40, "7B": 7, "0": 0,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "abc", "-1MiB", "1.2.3", "NaN", "Inf", "+Inf GiB", "1e30GiB", "9223372036854775807KiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

// Main's exit status: 0 on success, 2 for a usage error (a bad flag, a
// missing argument, Usage), a wrapped command's own status as it is, 1 for
// any other error.
func TestMainExitStatus(t *testing.T) {
	root := func(run func() error) *cobra.Command {
		c := &cobra.Command{Use: "lockscope-test", Args: cobra.ExactArgs(1),
			RunE: func(*cobra.Command, []string) error { return run() }}
		c.Flags().Int("n", 0, "a number")
		return c
	}
	ok := func() error { return nil }
	for _, c := range []struct {
		name string
		run  func() error
		args []string
		want int
	}{
		{"success", ok, []string{"x"}, ExitOK},
		{"unknown flag", ok, []string{"x", "--nope"}, ExitUsage},
		{"bad flag value", ok, []string{"x", "--n", "many"}, ExitUsage},
		{"missing argument", ok, nil, ExitUsage},
		{"usage error", func() error { return Usage(errors.New("--since: want RFC 3339")) }, []string{"x"}, ExitUsage},
		{"error", func() error { return errors.New("no samples") }, []string{"x"}, ExitError},
		{"wrapped command's status", func() error { return exitCode(42) }, []string{"x"}, 42},
		{"wrapped command killed", func() error { return exitCode(137) }, []string{"x"}, 137},
	} {
		if got := Main(root(c.run), c.args); got != c.want {
			t.Errorf("%s: exit status %d, want %d", c.name, got, c.want)
		}
	}
}

// A wrapped command's status is what a shell reports: its own exit
// status, or 128+N when signal N killed it.
func TestCommandStatus(t *testing.T) {
	for script, want := range map[string]int{"exit 0": 0, "exit 3": 3, "kill -KILL $$": 128 + 9, "kill -TERM $$": 128 + 15} {
		cmd := exec.Command("sh", "-c", script)
		_ = cmd.Run()
		if got, how := commandStatus(cmd.ProcessState); got != want {
			t.Errorf("%q: status %d (%s), want %d", script, got, how, want)
		}
	}
}
