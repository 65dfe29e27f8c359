package main_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

var (
	srv   *pgtest.Server
	built = pgtest.NewBinary("lockscope-capture")
	bin   = built.Path // the command, built when a test first runs it
)

func TestMain(m *testing.M) {
	if out := os.Getenv("LOCKSCOPE_TEST_COUNT_SIGINT"); out != "" {
		countSIGINT(out) // the test binary as a wrapped command
		return
	}
	os.Exit(pgtest.RunMainWithBinary(m, &srv, pgtest.Options{}, built))
}

// The recorder runs on database hosts: it must not link the analysis and
// rendering stack (Arrow, Graphviz's WASM runtime, plotting).
func TestLeanBinaryLinksNoAnalysisCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, forbidden := range []string{"github.com/apache/arrow-go", "github.com/goccy/go-graphviz", "github.com/tetratelabs/wazero", "gonum.org", "lockscope/analyze", "lockscope/report"} {
		if bytes.Contains(out, []byte(forbidden)) {
			t.Errorf("lockscope-capture links %s", forbidden)
		}
	}
}

// proc is a recorder process.
type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

func startRecorder(t *testing.T, shell string, args ...string) *proc {
	t.Helper()
	if shell != "" {
		// Run through a shell for ulimit; exec keeps the pid.
		return startProc(t, exec.Command("bash", append([]string{"-c", shell + "; exec \"$0\" \"$@\"", bin(t)}, args...)...))
	}
	return startProc(t, exec.Command(bin(t), args...))
}

// startProc starts cmd with its stderr kept; it is killed when the test
// ends.
func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		t.Fatalf("recorder still running after %v; stderr:\n%s", timeout, p.stderr.String())
		return -1
	}
}

// journalGrowth waits until the recording's journal holds at least n bytes.
func waitJournal(t *testing.T, dir string, n int64) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		js, _ := recording.Journals(dir)
		if len(js) > 0 {
			if fi, err := os.Stat(js[len(js)-1]); err == nil && fi.Size() >= n {
				return js[len(js)-1]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no journal of %d bytes in %s within 30s", n, dir)
	return ""
}

// checkRecording reads every file of every segment back.
func checkRecording(t *testing.T, dir string) []recording.Segment {
	t.Helper()
	segs, err := recording.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		for table, path := range s.Files {
			tf, err := recording.OpenTableFile(path)
			if err != nil {
				t.Errorf("%s: %v", table, err)
				continue
			}
			if tf.File.NumRows() < 0 {
				t.Errorf("%s: negative row count", path)
			}
			tf.Close()
		}
		if _, _, err := recording.ReadTable[recording.Tick](s.Files[recording.TableTicks]); err != nil {
			t.Error(err)
		}
		if p, ok := s.Files[recording.TableActivity]; ok {
			if _, _, err := recording.ReadTable[recording.Activity](p); err != nil {
				t.Error(err)
			}
		}
	}
	return segs
}

func fastArgs(dsn, out string) []string {
	return []string{"--dsn", dsn, "--out", out, "--probe-interval", "50ms", "--full-interval", "100ms", "--burst-interval", "100ms"}
}

func TestKill9LosesAtMostASecond(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "rec")
	p := startRecorder(t, "", fastArgs(srv.DSN("postgres"), out)...)
	journal := waitJournal(t, out, 1)
	// Let it record for a while, then kill it mid-segment.
	fi, _ := os.Stat(journal)
	waitJournal(t, out, fi.Size()+20_000)
	killed := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)

	rec := exec.Command(bin(t), "recover", out)
	msg, err := rec.CombinedOutput()
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, msg)
	}
	if !strings.Contains(string(msg), "1 segment(s) recovered") {
		t.Errorf("recover output: %s", msg)
	}
	segs := checkRecording(t, out)
	if len(segs) != 1 || !segs[0].Meta.Recovered {
		t.Fatalf("got %d segments (recovered=%v), want 1 recovered", len(segs), len(segs) > 0 && segs[0].Meta.Recovered)
	}
	ticks, _, err := recording.ReadTable[recording.Tick](segs[0].Files[recording.TableTicks])
	if err != nil {
		t.Fatal(err)
	}
	last := time.UnixMicro(ticks[len(ticks)-1].ClientTS)
	if lost := killed.Sub(last); lost > time.Second {
		t.Errorf("last recovered sample is %v before the kill, want at most 1s", lost)
	}
	if js, _ := recording.Journals(out); len(js) != 0 {
		t.Errorf("journals left after recover: %v", js)
	}
}

func TestSIGINTSealsAndExitsZero(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "rec")
	p := startRecorder(t, "", fastArgs(srv.DSN("postgres"), out)...)
	waitJournal(t, out, 5_000)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGINT, want 0; stderr:\n%s", code, p.stderr.String())
	}
	segs := checkRecording(t, out)
	if len(segs) != 1 || segs[0].Meta.Ticks == 0 {
		t.Fatalf("got %d segments, want 1 with samples", len(segs))
	}
	if js, _ := recording.Journals(out); len(js) != 0 {
		t.Errorf("journal left after SIGINT: %v", js)
	}
}

func TestBadInputExitStatus(t *testing.T) {
	pgtest.SkipIfShort(t)
	const password = "Never-Print-This-9"
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong port", []string{"--dsn", "host=127.0.0.1 port=1 user=x password=" + password + " connect_timeout=5", "--out", t.TempDir()}, 1, "cannot connect"},
		{"wrong user", []string{"--dsn", srv.DSN("postgres") + " user=no_such_role password=" + password, "--out", t.TempDir()}, 1, "no_such_role"},
		{"unwritable out", []string{"--dsn", srv.DSN("postgres"), "--out", filepath.Join(file, "rec")}, 1, "not a directory"},
		{"unknown flag", []string{"--frobnicate"}, 2, "unknown flag"},
		{"missing out", []string{"--dsn", srv.DSN("postgres")}, 2, "out"},
		{"bad interval", []string{"--dsn", srv.DSN("postgres"), "--out", t.TempDir(), "--probe-interval", "1ms"}, 1, "probe interval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startRecorder(t, "", c.args...)
			code := p.wait(t, 30*time.Second)
			stderr := p.stderr.String()
			if code != c.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if !strings.Contains(first, c.want) {
				t.Errorf("first line of stderr %q does not mention %q", first, c.want)
			}
			if strings.Contains(stderr, password) {
				t.Errorf("stderr shows the password:\n%s", stderr)
			}
		})
	}
}

// A full disk stops the recorder with a clear error and a non-zero exit;
// every closed segment stays valid, and what was open is recovered once
// there is room again.
func TestFullDiskStopsCleanly(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "rec")
	shell := ""
	want := "file too large"
	if os.Geteuid() == 0 {
		// A real full file system.
		if err := os.MkdirAll(out, 0o700); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160k,mode=0700", "tmpfs", out).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, msg)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", out).Run() })
		want = "no space left on device"
	} else {
		// Without root, a file-size limit fails writes the same way.
		shell = "ulimit -f 96"
	}
	args := append(fastArgs(srv.DSN("postgres"), out), "--segment-duration", "2s", "--query-max", "4096")
	p := startRecorder(t, shell, args...)
	code := p.wait(t, 120*time.Second)
	stderr := p.stderr.String()
	if code != 1 {
		t.Fatalf("exit status %d on a full disk, want 1; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	t.Logf("last line of stderr: %s", last)
	if !strings.Contains(last, want) || !strings.Contains(last, "recover") {
		t.Errorf("last line %q should say %q and how to recover", last, want)
	}
	// Every closed segment is valid.
	checkRecording(t, out)

	// With room again, what was left open is recovered.
	roomy := filepath.Join(t.TempDir(), "copy")
	if msg, err := exec.Command("cp", "-a", out, roomy).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v: %s", err, msg)
	}
	os.Remove(filepath.Join(roomy, ".lock"))
	if msg, err := exec.Command(bin(t), "recover", roomy).CombinedOutput(); err != nil {
		t.Fatalf("recover after freeing space: %v\n%s", err, msg)
	}
	segs := checkRecording(t, roomy)
	if len(segs) == 0 {
		t.Fatal("nothing recorded before the disk filled")
	}
	if js, _ := recording.Journals(roomy); len(js) != 0 {
		t.Errorf("journals left after recover: %v", js)
	}
}
