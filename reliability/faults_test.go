package reliability_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/reliability"
)

var (
	bin string // the lean recorder, lockscope-capture
	// clients is the pgbench workload's size: modest in make test,
	// a few hundred in make faults (LOCKSCOPE_FAULT_CLIENTS).
	clients = 40
	results struct {
		sync.Mutex
		rows []string
	}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if n, err := strconv.Atoi(os.Getenv("LOCKSCOPE_FAULT_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	dir, err := os.MkdirTemp("", "lockscope-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the read-only test runs the recorder as nobody
	root, err := reliability.ModuleRoot()
	if err == nil {
		bin, err = reliability.Build(root, "./cmd/lockscope-capture", dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if path := os.Getenv("LOCKSCOPE_FAULT_TABLE"); path != "" && len(results.rows) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "Faults under a pgbench workload of %d clients (tpcb-like):\n\n", clients)
		b.WriteString("| fault | the recorder | samples lost | closed segments read back | invalid files |\n|---|---|---|---|---|\n")
		for _, r := range results.rows {
			b.WriteString(r + "\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

func addResult(fault, state, lost string, c reliability.Check) {
	results.Lock()
	defer results.Unlock()
	results.rows = append(results.rows, fmt.Sprintf("| %s | %s | %s | %d segments, %d files | %d |",
		fault, state, lost, c.Segments, c.Files, len(c.Invalid)))
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", max(d, 0).Seconds()) }

// setup starts a server, fills it with pgbench's tables, and starts the
// recorder and a workload of n clients that runs until the test ends (it
// is restarted when a fault makes it fail).
type env struct {
	srv  *pgtest.Server
	dsn  string
	out  string
	rec  *reliability.Recorder
	pb   reliability.Pgbench
	stop context.CancelFunc
	done chan struct{}
}

func setup(t *testing.T, maxConn, n int, out string, args ...string) *env {
	return setupAs(t, nil, maxConn, n, out, args...)
}

func setupAs(t *testing.T, cred *syscall.Credential, maxConn, n int, out string, args ...string) *env {
	return setupWith(t, func(dsn, out string, args ...string) (*reliability.Recorder, error) {
		return reliability.StartRecorderAs(cred, bin, dsn, out, args...)
	}, maxConn, n, out, args...)
}

func setupWith(t *testing.T, startRec func(dsn, out string, args ...string) (*reliability.Recorder, error), maxConn, n int, out string, args ...string) *env {
	t.Helper()
	pgtest.SkipIfShort(t)
	ctx := context.Background()
	srv, err := pgtest.Start(ctx, pgtest.Options{MaxConnections: maxConn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	dsn, err := srv.CreateDatabase(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	pbBin, err := reliability.FindPgbench(srv.BinDir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, dsn: dsn, pb: reliability.Pgbench{Bin: pbBin, DSN: dsn}, done: make(chan struct{})}
	if err := e.pb.Init(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if out == "" {
		out = filepath.Join(t.TempDir(), "rec")
	}
	e.out = out
	if e.rec, err = startRec(dsn, out, append([]string{"--full-interval", "1s"}, args...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rec.Stop() })
	waitSealable(t, e.rec, out)
	wctx, cancel := context.WithCancel(ctx)
	e.stop = func() { cancel(); <-e.done }
	go func() {
		defer close(e.done)
		for wctx.Err() == nil {
			if _, err := e.pb.Run(wctx, n, 10*time.Minute); err != nil && wctx.Err() == nil {
				time.Sleep(200 * time.Millisecond) // a restart or a refused connection: try again
			}
		}
	}()
	t.Cleanup(e.stop)
	time.Sleep(3 * time.Second)
	return e
}

// expectStop waits for the recorder to stop on a storage fault: exit 1,
// its last line naming the fault and saying to run recover.
func (e *env) expectStop(t *testing.T, within time.Duration, fault string) {
	t.Helper()
	code := e.rec.Wait(within)
	e.stop()
	stderr := strings.TrimSpace(e.rec.Stderr())
	last := stderr[strings.LastIndex(stderr, "\n")+1:]
	if code != 1 || !strings.Contains(last, fault) || !strings.Contains(last, "recover") {
		t.Errorf("exit %d, last line %q: want 1 and one line naming %q and saying to run recover", code, last, fault)
	}
}

// waitSealable waits until the recorder has written its first sample.
func waitSealable(t *testing.T, rec *reliability.Recorder, out string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if js, _ := filepath.Glob(filepath.Join(out, "journal", "*.wal")); len(js) > 0 {
			if fi, err := os.Stat(js[0]); err == nil && fi.Size() > 64 {
				return
			}
		}
		if !rec.Running() {
			t.Fatalf("the recorder stopped: %s", rec.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no sample within 30s: %s", rec.Stderr())
}

func check(t *testing.T, out string) reliability.Check {
	t.Helper()
	c, err := reliability.CheckRecording(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Invalid) > 0 {
		t.Errorf("invalid files: %v", c.Invalid)
	}
	if c.Segments == 0 {
		t.Error("no sealed segment")
	}
	return c
}

// kill -9 mid-segment, then recover: at most about a second of samples is
// lost (the journal is fsynced every second) and every file reads back.
func TestFaultKill9(t *testing.T) {
	e := setup(t, clients+10, clients, "", "--segment-duration", "1h")
	time.Sleep(4 * time.Second)
	killed := e.rec.Kill()
	e.stop()
	if out, err := exec.Command(bin, "recover", e.out).CombinedOutput(); err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	c := check(t, e.out)
	if len(c.Ticks) == 0 {
		t.Fatal("no samples")
	}
	lost := killed.Sub(c.Ticks[len(c.Ticks)-1])
	if lost > 1500*time.Millisecond {
		t.Errorf("%.2f s of samples lost before the kill, want about 1 s at most", lost.Seconds())
	}
	if c.Recovered == 0 {
		t.Error("no segment was sealed by recover")
	}
	addResult("kill -9 mid-segment, then `recover`", "killed; `recover` sealed the journal", seconds(lost)+" before the kill", c)
}

// Two restarts of PostgreSQL: the recorder reconnects each time, records
// a gap for each, and never writes a sample inside one.
func TestFaultTwoRestarts(t *testing.T) {
	e := setup(t, clients+10, clients, "")
	ctx := context.Background()
	for i := range 2 {
		if err := e.srv.Restart(ctx); err != nil {
			t.Fatalf("restart %d: %v", i+1, err)
		}
		time.Sleep(4 * time.Second)
	}
	e.stop()
	state := "kept running, reconnected twice"
	if !e.rec.Running() {
		t.Fatalf("the recorder stopped: %s", e.rec.Stderr())
	}
	if code := e.rec.Stop(); code != 0 {
		t.Errorf("exit %d after SIGINT", code)
	}
	c := check(t, e.out)
	if len(c.Gaps) < 2 {
		t.Errorf("%d gap events, want one per restart", len(c.Gaps))
	}
	if n := c.TicksInside(); n > 0 {
		for _, g := range c.Gaps {
			for _, tk := range c.Ticks {
				if tk.After(g[0].Add(-time.Second)) && tk.Before(g[1].Add(time.Second)) {
					t.Logf("gap %s..%s tick %s (%+v after start)", g[0].Format("15:04:05.000000"), g[1].Format("15:04:05.000000"), tk.Format("15:04:05.000000"), tk.Sub(g[0]))
				}
			}
		}
		t.Errorf("%d samples inside gaps", n)
	}
	var lost time.Duration
	for _, g := range c.Gaps {
		lost += g[1].Sub(g[0])
	}
	addResult("PostgreSQL restarted twice", state+"; a gap event each", seconds(lost)+" (the two gaps)", c)
}

// A full disk: the recorder stops with one line that says what to do,
// exit 1, and every closed segment stays valid. As root a real 512 KiB
// tmpfs fills; otherwise a file-size limit fails the writes the same way.
func TestFaultFullDisk(t *testing.T) {
	out, fault, what := "", "file too large", "file-size limit (ulimit -f 64)"
	if os.Geteuid() == 0 {
		out, fault, what = mountTmpfs(t, "size=512k"), "no space left on device", "disk full (512 KiB tmpfs)"
	}
	e := setupWith(t, func(dsn, out string, args ...string) (*reliability.Recorder, error) {
		if os.Geteuid() == 0 {
			return reliability.StartRecorder(bin, dsn, out, args...)
		}
		return reliability.StartRecorderLimited(64, bin, dsn, out, args...)
	}, clients+10, clients, out, "--segment-duration", "10s")
	e.expectStop(t, 3*time.Minute, fault)
	c := check(t, e.out)
	addResult(what, "exit 1 with one line ("+fault+"; closed segments intact; free space, then `recover`)", "none before the fault; it stops", c)
}

// The output directory turns read-only under the recorder. As root the
// recorder runs as nobody, whom the permissions bind.
func TestFaultReadOnlyDirectory(t *testing.T) {
	var cred *syscall.Credential
	base := t.TempDir()
	out := filepath.Join(base, "rec")
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		for d := base; d != "/"; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o011 == 0 {
				os.Chmod(d, fi.Mode().Perm()|0o711)
			}
		}
		if err := os.MkdirAll(out, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(out, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	e := setupAs(t, cred, clients+10, clients, out, "--segment-duration", "2s")
	time.Sleep(3 * time.Second)
	filepath.Walk(e.out, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, 0o500)
		}
		return nil
	})
	t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", e.out).Run() })
	readOnly := time.Now()
	e.expectStop(t, 2*time.Minute, "permission denied")
	c := check(t, e.out)
	// What had not been sealed is in the journal, for recover once the
	// directory is writable again.
	exec.Command("chmod", "-R", "u+w", e.out).Run()
	if msg, err := exec.Command(bin, "recover", e.out).CombinedOutput(); err != nil {
		t.Fatalf("recover: %v\n%s", err, msg)
	}
	after := check(t, e.out)
	var lost time.Duration
	if len(after.Ticks) > 0 {
		lost = max(readOnly.Sub(after.Ticks[len(after.Ticks)-1]), 0)
	}
	if lost > 1500*time.Millisecond {
		t.Errorf("%.1f s of samples before the directory turned read-only are lost", lost.Seconds())
	}
	addResult("output directory made read-only", "exit 1 with one line (permission denied; recover); `recover` sealed the rest once writable", seconds(lost)+" before the fault; it stops", c)
}

// The workload takes every connection slot: new connections are refused,
// and the recorder's own connection keeps sampling.
func TestFaultMaxConnections(t *testing.T) {
	const maxConn = 30
	e := setup(t, maxConn, maxConn-1, "")
	// Every slot is taken: a new connection is refused.
	conn, err := pgx.Connect(context.Background(), e.dsn)
	if err == nil {
		conn.Close(context.Background())
		t.Fatal("a new connection was accepted: the server is not full")
	}
	if !strings.Contains(err.Error(), "too many clients") && !strings.Contains(err.Error(), "remaining connection slots") {
		t.Logf("refused with: %v", err)
	}
	from := time.Now()
	time.Sleep(5 * time.Second)
	to := time.Now()
	e.stop()
	if !e.rec.Running() {
		t.Fatalf("the recorder stopped: %s", e.rec.Stderr())
	}
	e.rec.Stop()
	c := check(t, e.out)
	hole, _ := c.LongestHole(from, to)
	if hole > 2500*time.Millisecond {
		t.Errorf("no sample for %.1f s while the server was full", hole.Seconds())
	}
	addResult(fmt.Sprintf("max_connections (%d) reached by the workload", maxConn), "kept its connection and kept sampling", "none (longest pause "+seconds(hole)+")", c)
}

// The recorder's backend is terminated from the server: it reconnects and
// records the gap.
func TestFaultBackendTerminated(t *testing.T) {
	e := setup(t, clients+10, clients, "")
	conn, err := pgx.Connect(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = conn.QueryRow(context.Background(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'lockscope-capture'").Scan(&n)
	conn.Close(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("terminated %d recorder backends: %v", n, err)
	}
	time.Sleep(5 * time.Second)
	e.stop()
	if !e.rec.Running() {
		t.Fatalf("the recorder stopped: %s", e.rec.Stderr())
	}
	e.rec.Stop()
	c := check(t, e.out)
	if len(c.Gaps) != 1 {
		t.Errorf("%d gap events, want 1", len(c.Gaps))
	}
	var lost time.Duration
	for _, g := range c.Gaps {
		lost += g[1].Sub(g[0])
	}
	addResult("the recorder's backend terminated (pg_terminate_backend)", "reconnected; a gap event", seconds(lost)+" (the gap)", c)
}

func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rec")
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("mount", "-t", "tmpfs", "-o", opts+",mode=0700", "tmpfs", out).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", out).Run() })
	return out
}
