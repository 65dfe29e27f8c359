package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// fullPipe returns a pipe whose buffer is already full: a process given
// its write end blocks on its first write, until the read end is drained.
// That holds a command at a known point inside its run while the test
// signals it.
func fullPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for i := range chunk {
		chunk[i] = '#'
	}
	for {
		if _, err := syscall.Write(fds[1], chunk); err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			t.Fatal(err)
		}
	}
	// Single bytes fill what a 4 KiB write could not.
	for {
		if _, err := syscall.Write(fds[1], chunk[:1]); err != nil {
			break
		}
	}
	if err := syscall.SetNonblock(fds[1], false); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(fds[0], false); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// waitBlockedInWrite waits, polling the kernel's view of pid's threads,
// until one of them sleeps in a write to a pipe.
func waitBlockedInWrite(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		for _, p := range tasks {
			if w, _ := os.ReadFile(p); strings.Contains(string(w), "pipe_write") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never blocked writing to its pipe", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSignalTaken waits until no signal is pending for pid: the kernel has
// run its handler.
func waitSignalTaken(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		pending := false
		for _, line := range strings.Split(string(status), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "SigPnd" || k == "ShdPnd") && strings.Trim(strings.TrimSpace(v), "0") != "" {
				pending = true
			}
		}
		if !pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the signal to %d stays pending", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSignalExitStatus: a command stopped by SIGINT or SIGTERM ends with one
// line naming the signal and exit status 130 or 143, as a shell expects,
// not with "context canceled" and 1.
func TestSignalExitStatus(t *testing.T) {
	rec := filepath.Join("..", "..", "fixtures", "cron-vs-alter", "recording")
	t.Run("analyze/SIGINT", func(t *testing.T) {
		// Its first debug line blocks on a full stderr: analysis has
		// begun and not finished when the signal comes.
		r, w := fullPipe(t)
		cmd := exec.Command(bin(t), "analyze", rec, "-o", t.TempDir(), "--log-level", "debug")
		cmd.Stderr = w
		checkSignalled(t, cmd, r, syscall.SIGINT, 130, nil)
	})
	t.Run("replay/SIGTERM", func(t *testing.T) {
		// A walk of thousands of moments, held on a full stdout.
		r, w := fullPipe(t)
		cmd := exec.Command(bin(t), "replay", rec, "--at", "start", "--step", "1ms", "--view", "verify")
		cmd.Stdout = w
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		checkSignalled(t, cmd, r, syscall.SIGTERM, 143, &stderr)
	})
	t.Run("train/SIGINT", func(t *testing.T) {
		// Waiting for the trainee's first answer on an open stdin.
		stdin, answers, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer answers.Close()
		defer stdin.Close()
		cmd := exec.Command(bin(t), "train", rec, "--lines")
		cmd.Stdin = stdin
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdin.Close()
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString(' ')
			if err != nil {
				t.Fatalf("train ended before its first question: %v\n%s", err, stderr.String())
			}
			if strings.HasSuffix(line, "> ") {
				break
			}
		}
		go io.Copy(io.Discard, br)
		cmd.Process.Signal(syscall.SIGINT)
		checkExit(t, cmd, syscall.SIGINT, 130, &stderr)
	})
}

// TestLabSignalled: SIGTERM during a live drill cleans up as Ctrl-C does,
// prints the score of the drill so far, and exits 143.
func TestLabSignalled(t *testing.T) {
	pgtest.SkipIfShort(t)
	cmd := exec.Command(bin(t), "lab", "--time-limit", "90s")
	lab := startLab(t, cmd)
	done := make(chan struct{})
	go func() { io.Copy(&lab.out, lab.stdout); close(done) }()
	cmd.Process.Signal(syscall.SIGTERM)
	<-done
	checkExit(t, cmd, syscall.SIGTERM, 143, &lab.stderr)
	if !strings.Contains(lab.out.String(), "Drill ") {
		t.Errorf("no score after SIGTERM:\n%s", lab.out.String())
	}
}

// labRun is a started lockscope lab whose brief has been read up to the
// psql line.
type labRun struct {
	dsn    string         // the DSN of the psql line
	stdout io.Reader      // lab's stdout, after what lines has read
	lines  *bufio.Scanner // lab's stdout by line, copied into out
	out    bytes.Buffer   // the stdout read so far
	stderr bytes.Buffer
}

// startLab starts cmd, a lockscope lab command, and reads its brief up to
// the line that says how to connect. A lab that prints none is killed and
// fails the test.
func startLab(t *testing.T, cmd *exec.Cmd) *labRun {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	lab := &labRun{stdout: stdout}
	cmd.Stderr = &lab.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lab.lines = bufio.NewScanner(io.TeeReader(stdout, &lab.out))
	dsnLine := regexp.MustCompile(`^\s+psql "(.+)"$`)
	for lab.lines.Scan() {
		if m := dsnLine.FindStringSubmatch(lab.lines.Text()); m != nil {
			lab.dsn = m[1]
			return lab
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("no psql line in the brief:\n%s\n%s", lab.out.String(), lab.stderr.String())
	return nil
}

// checkSignalled starts cmd with the write end of a full pipe as stdout or
// stderr, waits until it blocks writing there, sends sig, drains the pipe
// and checks the exit.
func checkSignalled(t *testing.T, cmd *exec.Cmd, r *os.File, sig syscall.Signal, want int, stderr *bytes.Buffer) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitBlockedInWrite(t, cmd.Process.Pid)
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	waitSignalTaken(t, cmd.Process.Pid)
	var drained bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&drained, r); close(done) }()
	// The child holds the only other write end; the parent's copy goes
	// once the child has it.
	for _, f := range []*os.File{asFile(cmd.Stdout), asFile(cmd.Stderr)} {
		if f != nil {
			f.Close()
		}
	}
	if stderr == nil {
		stderr = &drained
	}
	err := cmd.Wait()
	<-done
	checkExitErr(t, err, sig, want, stderr)
}

func asFile(w io.Writer) *os.File {
	f, _ := w.(*os.File)
	return f
}

func checkExit(t *testing.T, cmd *exec.Cmd, sig syscall.Signal, want int, stderr *bytes.Buffer) {
	t.Helper()
	checkExitErr(t, cmd.Wait(), sig, want, stderr)
}

func checkExitErr(t *testing.T, err error, sig syscall.Signal, want int, stderr *bytes.Buffer) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("exit: %v, want status %d; stderr:\n%s", err, want, stderr.String())
	}
	if got := ee.ExitCode(); got != want {
		t.Errorf("exit status %d, want %d (killed by a signal shows as -1); stderr:\n%s", got, want, stderr.String())
	}
	var name = map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig]
	text := strings.TrimRight(strings.Trim(stderr.String(), "#"), "\n")
	lines := strings.Split(text, "\n")
	last := lines[len(lines)-1]
	if last != "lockscope: interrupted by "+name {
		t.Errorf("last line of stderr %q, want %q", last, "lockscope: interrupted by "+name)
	}
	if strings.Contains(text, "context canceled") {
		t.Errorf("stderr speaks of a cancelled context:\n%s", text)
	}
}
