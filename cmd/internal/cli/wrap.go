package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
)

// Analysis is what the full binary adds to a wrapped command's capture:
// it prints the incidents of the window [since, until] of the recording
// in dir to w, one line each, and writes the post-mortem into reportDir
// when that is set. The lean recorder has none and prints what the
// samples showed instead.
type Analysis func(ctx context.Context, dir string, since, until time.Time, reportDir string, w io.Writer) error

// exitCode is a wrapped command's exit status, passed through by Main.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// runWrapped records around command: it starts the recorder, waits for the
// first full sample, runs command with stdio passed through and SIGINT and
// SIGTERM forwarded, records --tail more, seals, prints a summary and
// returns command's exit status.
func runWrapped(cmd *cobra.Command, o *captureOptions, log *slog.Logger, command []string) error {
	if o.cfg.Duration > 0 {
		return Usage(errors.New("--duration cannot be combined with a wrapped command: the command's end stops the capture"))
	}
	if o.tail < 0 {
		return Usage(fmt.Errorf("--tail %v must not be negative", o.tail))
	}
	path, err := exec.LookPath(command[0])
	if err != nil {
		return fmt.Errorf("capture: command %q: %w", command[0], err)
	}
	w := &wrapped{o: o, log: log, stderr: cmd.ErrOrStderr(), win: capture.NewWindow(),
		events: make(chan recording.Event, 8), sigc: make(chan os.Signal, 4), done: make(chan error, 1)}
	// The command, not lockscope, decides what a signal does: lockscope
	// forwards it and records on until the command has exited.
	signal.Notify(w.sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(w.sigc)
	ready := w.startRecorder(cmd.Context())
	defer w.stopRec(nil)
	if err := w.awaitFirstSample(ready, command[0]); err != nil {
		return err
	}

	c := exec.Command(path, command[1:]...)
	c.Args[0] = command[0]
	c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), w.stderr
	status, how, dur, err := w.runCommand(c, capture.RedactCommand(command))
	if err != nil {
		return err
	}
	w.recordTail(how)
	w.report(cmd.Context(), how, dur)
	if status == 0 {
		return nil
	}
	return exitCode(status)
}

// wrapped is one capture around a command: the recorder running in the
// background, and the signals lockscope receives meanwhile.
type wrapped struct {
	o      *captureOptions
	log    *slog.Logger
	stderr io.Writer
	win    *capture.Window      // the recorder's summary of the run
	events chan recording.Event // the command's start and end, into the recording
	sigc   chan os.Signal       // SIGINT and SIGTERM to lockscope
	done   chan error           // capture.Run's result, once
	// stopRec stops the recorder, giving the reason.
	stopRec context.CancelCauseFunc
	// recStopped says the recorder ended before it was stopped (a full
	// disk, say), with recErr.
	recStopped bool
	recErr     error
}

// startRecorder starts capture in the background with the run's window
// and events. The channel it returns is closed at the first full sample.
func (w *wrapped) startRecorder(ctx context.Context) <-chan struct{} {
	ready := make(chan struct{})
	var once sync.Once
	cfg := w.o.cfg
	cfg.Window, cfg.Events = w.win, w.events
	cfg.OnTick = func(t recording.Tick) {
		if t.Kind == recording.TickFull {
			once.Do(func() { close(ready) })
		}
	}
	rctx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	w.stopRec = stop
	go func() { w.done <- capture.Run(rctx, cfg) }()
	return ready
}

// awaitFirstSample waits until the recorder has taken its first full
// sample, so that the command never runs unrecorded. A recorder that fails
// first, or a signal, leaves the command unrun.
func (w *wrapped) awaitFirstSample(ready <-chan struct{}, name string) error {
	select {
	case <-ready:
		return nil
	case err := <-w.done:
		return captureError(err)
	case sig := <-w.sigc:
		w.stopRec(fmt.Errorf("%v before the command started", sig))
		if err := <-w.done; err != nil {
			return captureError(err)
		}
		fmt.Fprintf(w.stderr, "lockscope: %v before the first sample: %s was not run\n", sig, name)
		return exitCode(128 + int(sig.(syscall.Signal)))
	}
}

// runCommand runs c to its end and records its start and end as events
// (line is its command line without passwords). It returns c's exit
// status, how it ended and how long it ran.
func (w *wrapped) runCommand(c *exec.Cmd, line string) (status int, how string, dur time.Duration, err error) {
	start := time.Now()
	if err := c.Start(); err != nil {
		w.stopRec(errors.New("the wrapped command did not start"))
		<-w.done
		return 0, "", 0, fmt.Errorf("capture: start %s: %w", c.Args[0], err)
	}
	w.events <- recording.Event{TS: start.UnixMicro(), Kind: recording.EventCommandStart,
		Message: recording.CommandStartMessage(c.Process.Pid, line)}
	w.log.Info("command started", "pid", c.Process.Pid, "command", line)
	w.waitForwarding(c)
	dur = time.Since(start)
	status, how = commandStatus(c.ProcessState)
	endMsg := recording.CommandEndMessage(how, dur, line)
	w.events <- recording.Event{TS: time.Now().UnixMicro(), Kind: recording.EventCommandEnd, Message: endMsg}
	w.log.Info("command ended", "status", status, "how", how, "duration", dur.Round(time.Millisecond))
	return status, how, dur, nil
}

// waitForwarding waits for the started c to exit, forwarding the signals
// lockscope receives to it. A recorder that stops meanwhile (the disk
// filled up) does not stop the command: the deploy goes on.
func (w *wrapped) waitForwarding(c *exec.Cmd) {
	// In a terminal's foreground, Ctrl-C reaches the whole process group,
	// the command included: forwarding it as well would interrupt the
	// command twice (and cut its own clean-up short).
	interactive := isTerminal(os.Stdin) && foreground(os.Stdin)
	waitc := make(chan error, 1)
	go func() { waitc <- c.Wait() }()
	for {
		select {
		case sig := <-w.sigc:
			if sig == os.Interrupt && interactive {
				// Ctrl-C: the terminal sent it to the command too.
				w.log.Info("interrupt from the terminal; the command has it too", "pid", c.Process.Pid)
				continue
			}
			w.log.Info("forwarding signal to the command", "signal", sig.String(), "pid", c.Process.Pid)
			c.Process.Signal(sig)
		case <-waitc:
			return
		case err := <-w.done:
			w.recStopped, w.recErr = true, err
			w.log.Error("recording stopped while the command runs", "err", err)
		}
	}
}

// recordTail records --tail more after the command's end (a signal cuts
// it short), then stops the recorder, which seals its segment.
func (w *wrapped) recordTail(how string) {
	if w.recStopped {
		return
	}
	tail := time.NewTimer(w.o.tail)
	defer tail.Stop()
	select {
	case <-tail.C:
	case sig := <-w.sigc:
		w.log.Info("tail cut short by signal", "signal", sig.String())
	case err := <-w.done:
		w.recStopped, w.recErr = true, err
		return
	}
	w.stopRec(fmt.Errorf("the wrapped command %s; %v tail recorded", how, w.o.tail))
	w.recErr = <-w.done
}

// report prints the summary of the window, its incidents (the full
// binary's analysis, else what the samples showed) and whether the
// recording stopped early.
func (w *wrapped) report(ctx context.Context, how string, dur time.Duration) {
	s := w.win.Summary()
	printSummary(w.stderr, s, w.o, how, dur)
	if w.o.analysis != nil && s.Samples > 0 {
		since, until := s.Start.Add(-time.Second), s.End.Add(time.Second)
		if err := w.o.analysis(context.WithoutCancel(ctx), w.o.cfg.Out, since, until, w.o.report, w.stderr); err != nil {
			fmt.Fprintf(w.stderr, "lockscope: analysis of the window: %s\n", oneLine(err.Error()))
		}
	} else {
		printWindowIncidents(w.stderr, s)
	}
	if w.recErr != nil {
		fmt.Fprintf(w.stderr, "lockscope: the recording stopped early: %s\n", oneLine(captureError(w.recErr).Error()))
	}
}

// commandStatus is the exit status a shell would report: the command's
// own, or 128+N when signal N killed it.
func commandStatus(ps *os.ProcessState) (int, string) {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := ws.Signal()
		return 128 + int(sig), fmt.Sprintf("killed by signal %d (%v)", int(sig), sig)
	}
	return ps.ExitCode(), fmt.Sprintf("exited with status %d", ps.ExitCode())
}

// printSummary prints the window: its span, the peak of lock waiters,
// the longest wait and what the guard did.
func printSummary(w io.Writer, s capture.WindowSummary, o *captureOptions, how string, dur time.Duration) {
	fmt.Fprintf(w, "lockscope: command %s after %.1f s; recorded %s to %s UTC (%d sample(s)) in %s\n",
		how, dur.Seconds(), s.Start.Format("15:04:05.0"), s.End.Format("15:04:05.0"), s.Samples, o.cfg.Out)
	if s.PeakWaiters == 0 {
		fmt.Fprintln(w, "lockscope: no session waited on a lock")
	} else {
		fmt.Fprintf(w, "lockscope: peak %d lock waiters at %s", s.PeakWaiters, s.PeakAt.Format("15:04:05.0"))
		if l := s.Longest; l != nil {
			fmt.Fprintf(w, "; longest wait %.1f s: pid %d (%s) %s on %s: %s", l.Waited.Seconds(), l.PID, l.App, l.Mode, l.Relation, short(l.Query, 80))
		}
		fmt.Fprintln(w)
	}
	switch {
	case o.cfg.GuardWait <= 0:
		fmt.Fprintln(w, "lockscope: guard: off")
	case len(s.Cancels) == 0:
		fmt.Fprintf(w, "lockscope: guard (wait %v, queue %d): did not act\n", o.cfg.GuardWait, o.cfg.GuardQueue)
	default:
		for _, c := range s.Cancels {
			fmt.Fprintf(w, "lockscope: guard %s\n", short(c.Message(), 200))
		}
	}
}

// printWindowIncidents prints, per root blocker the samples showed, one
// line with the DDL queued behind it.
func printWindowIncidents(w io.Writer, s capture.WindowSummary) {
	for _, inc := range s.Incidents {
		fmt.Fprintf(w, "lockscope: root blocker pid %d (%s, %s) blocked %d at most, %s to %s: %s",
			inc.RootPID, inc.RootApp, inc.RootState, inc.PeakBehind, inc.First.Format("15:04:05.0"), inc.Last.Format("15:04:05.0"), short(inc.RootQuery, 80))
		if d := inc.DDL; d != nil {
			fmt.Fprintf(w, "; DDL pid %d (%s) %s on %s waited %.1f s with %d queued behind: %s", d.PID, d.App, d.Mode, d.Relation, d.Waited.Seconds(), d.Behind, short(d.Query, 80))
		}
		fmt.Fprintln(w)
	}
}

func short(s string, n int) string {
	s = oneLine(s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// captureError says what to do about a capture that failed.
func captureError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, capture.ErrConnect):
		return fmt.Errorf("capture: %w (check --dsn, the PG* variables or ~/.pgpass)", err)
	case errors.Is(err, recording.ErrLocked):
		return fmt.Errorf("capture: %w: stop the other capture or choose another --out", err)
	case strings.HasPrefix(err.Error(), "capture"):
		return err
	}
	return fmt.Errorf("capture: %w", err)
}
