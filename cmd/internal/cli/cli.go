// Package cli holds the command-line plumbing the lockscope binaries share:
// the capture and recover commands, logging, and the mapping of errors to
// exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/capture/recording"
)

// Exit codes, documented in every command's help.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// A command other than capture stopped by a signal exits 128 plus the
	// signal's number, as a shell expects: 130 for SIGINT, 143 for SIGTERM.
	ExitSIGINT  = 128 + int(syscall.SIGINT)
	ExitSIGTERM = 128 + int(syscall.SIGTERM)
)

// ExitStatusHelp is appended to each command's long help.
const ExitStatusHelp = `
Exit status:
  0    success; also a capture stopped by SIGINT/SIGTERM or --duration
  1    an error (the message says what was wrong and what to do)
  2    a usage error (an unknown flag, a missing argument)
  130  any other command interrupted by SIGINT (Ctrl-C); 143 by SIGTERM`

// SignalIsStop is the annotation of a command for which SIGINT and SIGTERM
// are the normal way to stop (capture): Main then exits 0 when the command
// returns no error.
const SignalIsStop = "lockscope.signal-is-stop"

// usageError marks errors in the command line itself.
type usageError struct{ error }

// Usage wraps err as a usage error (exit status 2).
func Usage(err error) error { return usageError{err} }

// Main runs root with SIGINT/SIGTERM turned into a context cancel, prints
// an error as one line on stderr, and returns the exit code.
//
// A command stopped by a signal (analyze, replay, train, lab: whatever it
// was doing, cut short; lab still prints the score of the drill so far)
// ends with one line naming the signal and exits 130 or 143. A command
// annotated with SignalIsStop (capture: it seals its segment) exits 0.
func Main(root *cobra.Command, args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var got atomic.Value // the first signal received
	go func() {
		select {
		case s := <-sigs:
			got.Store(s)
			cancel()
		case <-ctx.Done():
			return
		}
		// A second signal ends the process at once, whatever the command
		// is still doing (the throwaway servers of lab and demo die with
		// it through Pdeathsig).
		s := <-sigs
		fmt.Fprintf(os.Stderr, "%s: interrupted by %s\n", root.Name(), signalName(s))
		os.Exit(signalExit(s))
	}()
	// A file-size limit (ulimit -f) must fail a write with EFBIG, which the
	// recorder handles like a full disk, rather than kill the process.
	signal.Ignore(syscall.SIGXFSZ)
	root.SetArgs(args)
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return Usage(err) })
	cmd, err := root.ExecuteContextC(ctx)
	if s, ok := got.Load().(os.Signal); ok && (cmd == nil || cmd.Annotations[SignalIsStop] == "") {
		fmt.Fprintf(os.Stderr, "%s: interrupted by %s\n", root.Name(), signalName(s))
		return signalExit(s)
	}
	if err == nil {
		return ExitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code) // a wrapped command's status: it has spoken for itself
	}
	fmt.Fprintf(os.Stderr, "%s: %s\n", root.Name(), oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", root.Name())
		return ExitUsage
	}
	return ExitError
}

func signalExit(s os.Signal) int {
	if s == syscall.SIGTERM {
		return ExitSIGTERM
	}
	return ExitSIGINT
}

func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

// isCobraUsage recognises cobra's own argument errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires at least") || strings.HasPrefix(msg, "required flag")
}

func oneLine(s string) string { return recording.OneLine(s, 0) }

// LogFlags are the logging options every command takes.
type LogFlags struct {
	Level  string
	Format string
}

// Add registers the flags on cmd.
func (f *LogFlags) Add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.Level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.PersistentFlags().StringVar(&f.Format, "log-format", "text", "log format on stderr: text or json")
}

// Logger builds the stderr logger the flags describe.
func (f *LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.Level)); err != nil {
		return nil, Usage(fmt.Errorf("--log-level %q: want debug, info, warn or error", f.Level))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, Usage(fmt.Errorf("--log-format %q: want text or json", f.Format))
}

// ParseSize parses a byte size such as 512MiB, 2GiB, 100MB or 1048576.
func ParseSize(in string) (int64, error) {
	s := strings.TrimSpace(in)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	v := n * float64(mult)
	// NaN fails every comparison; 2^63 bytes and more do not fit.
	if err != nil || !(v >= 0 && v < math.MaxInt64) {
		return 0, fmt.Errorf("size %q: want a number of bytes up to 8 EiB with an optional unit (KiB, MiB, GiB)", in)
	}
	return int64(v), nil
}
