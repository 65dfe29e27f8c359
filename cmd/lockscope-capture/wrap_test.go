package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// startStmt runs sql on its own session in the background; the channel
// gets its result.
func startStmt(t *testing.T, dsn, app, sql string) chan error {
	t.Helper()
	conn := pgtest.Connect(t, dsn, app)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), sql)
		done <- err
	}()
	return done
}

// waitUntil polls a boolean query until it is true.
func waitUntil(t *testing.T, conn *pgx.Conn, what, sql string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var ok bool
		if err := conn.QueryRow(context.Background(), sql, args...).Scan(&ok); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 30s", what)
}

// sqlWaitedLonger: the deploy's statement (one psql -c, so it began
// waiting as it started) has waited on a lock longer than $1. It reads
// query_start rather than pg_locks.waitstart, which PostgreSQL 13 lacks.
const sqlWaitedLonger = `SELECT coalesce(bool_or(clock_timestamp() - query_start > $1::interval), false)
FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'deploy'`

const sqlLockWaiters = `SELECT count(*) = $2 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE $1`

// readRecording returns every event and tick of the recording in dir.
func readRecording(t *testing.T, dir string) ([]recording.Event, []recording.Tick) {
	t.Helper()
	var events []recording.Event
	var ticks []recording.Tick
	for _, s := range checkRecording(t, dir) {
		ev, _, err := recording.ReadTable[recording.Event](s.Files[recording.TableEvents])
		if err != nil {
			t.Fatal(err)
		}
		tk, _, err := recording.ReadTable[recording.Tick](s.Files[recording.TableTicks])
		if err != nil {
			t.Fatal(err)
		}
		events, ticks = append(events, ev...), append(ticks, tk...)
	}
	return events, ticks
}

func eventsOf(events []recording.Event, kind string) []recording.Event {
	var out []recording.Event
	for _, e := range events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func psqlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: apt-get install postgresql-client (make postgres)")
	}
	return p
}

func TestWrapPassesExitStatusAndRecordsTheWindow(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "rec")
	args := append(fastArgs(srv.DSN("postgres"), out), "--tail", "1s", "--",
		"sh", "-c", "sleep 0.5; echo deployed; exit 3", "deploy", "postgres://deploy:hunter2@db1/odoo", "--db_password=s3cret")
	var stdout, stderr bytes.Buffer
	run := exec.Command(bin(t), args...)
	run.Stdout, run.Stderr = &stdout, &stderr
	err := run.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit: %v, want the command's status 3; stderr:\n%s", err, stderr.String())
	}
	if stdout.String() != "deployed\n" {
		t.Errorf("stdout %q, want the command's own", stdout.String())
	}
	events, ticks := readRecording(t, out)
	starts, ends := eventsOf(events, recording.EventCommandStart), eventsOf(events, recording.EventCommandEnd)
	if len(starts) != 1 || len(ends) != 1 {
		t.Fatalf("got %d command_start and %d command_end events, want 1 each: %+v", len(starts), len(ends), events)
	}
	if !strings.Contains(ends[0].Message, "exited with status 3 after 0.") {
		t.Errorf("command_end message %q does not carry the status and duration", ends[0].Message)
	}
	for _, e := range []recording.Event{starts[0], ends[0]} {
		if !strings.Contains(e.Message, "sh -c 'sleep 0.5; echo deployed; exit 3'") {
			t.Errorf("event %s: message %q lacks the command line", e.Kind, e.Message)
		}
		if strings.Contains(e.Message, "hunter2") || strings.Contains(e.Message, "s3cret") {
			t.Errorf("event %s: message %q carries a password", e.Kind, e.Message)
		}
	}
	// The recording covers the command from before its start to its end
	// and the tail after it (server and recorder share this host's clock).
	var firstFull, last int64
	for _, tk := range ticks {
		if tk.Kind == recording.TickFull && firstFull == 0 {
			firstFull = tk.TS
		}
		last = max(last, tk.TS)
	}
	if firstFull == 0 || firstFull > starts[0].TS {
		t.Errorf("first full sample at %d, not before the command's start at %d", firstFull, starts[0].TS)
	}
	if tail := time.Duration(last-ends[0].TS) * time.Microsecond; tail < 800*time.Millisecond {
		t.Errorf("last sample %v after the command ended, want the 1s tail", tail)
	}
	stop := eventsOf(events, recording.EventStop)
	if len(stop) != 1 || !strings.Contains(stop[0].Message, "exited with status 3") {
		t.Errorf("stop events %+v, want one naming the command's end", stop)
	}
	// Nothing in the recording holds the passwords.
	filepath.Walk(out, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			data, _ := os.ReadFile(path)
			if bytes.Contains(data, []byte("hunter2")) || bytes.Contains(data, []byte("s3cret")) {
				t.Errorf("%s holds a password", path)
			}
		}
		return nil
	})
	if !strings.Contains(stderr.String(), "lockscope: command exited with status 3") || !strings.Contains(stderr.String(), "guard: off") {
		t.Errorf("no summary on stderr:\n%s", stderr.String())
	}
}

func TestWrapSignalIsForwardedToTheCommand(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "rec")
	marker := filepath.Join(t.TempDir(), "started")
	p := startRecorder(t, "", append(fastArgs(srv.DSN("postgres"), out), "--tail", "200ms", "--",
		"sh", "-c", `touch "$0"; exec sleep 60`, marker)...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("command not started; stderr:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the exec into sleep
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 128+15 {
		t.Fatalf("exit status %d, want 143 (the command died of SIGTERM); stderr:\n%s", code, p.stderr.String())
	}
	events, _ := readRecording(t, out)
	ends := eventsOf(events, recording.EventCommandEnd)
	if len(ends) != 1 || !strings.Contains(ends[0].Message, "killed by signal 15") {
		t.Errorf("command_end events %+v, want one saying signal 15", ends)
	}
}

// stageALTERQueue stages the acceptance test's incident: a blocker
// holding RowExclusive on t (an open UPDATE), and, on u, a weak-lock
// queue: a holder of Share and a ShareUpdateExclusive waiter with three
// more behind it. It returns the admin session and the weak waiter's
// result channel.
func stageWeakQueue(t *testing.T, dsn string) (admin *pgx.Conn, blocker *pgx.Conn, weak chan error) {
	t.Helper()
	ctx := context.Background()
	admin = pgtest.Connect(t, dsn, "admin")
	if _, err := admin.Exec(ctx, `CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100); CREATE TABLE u (id int)`); err != nil {
		t.Fatal(err)
	}
	blocker = pgtest.Connect(t, dsn, "blocker")
	if _, err := blocker.Exec(ctx, "BEGIN; UPDATE t SET id = id WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	holder := pgtest.Connect(t, dsn, "holder")
	if _, err := holder.Exec(ctx, "BEGIN; LOCK TABLE u IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	weak = startStmt(t, dsn, "weak-0", "BEGIN; LOCK TABLE u IN SHARE UPDATE EXCLUSIVE MODE; COMMIT")
	waitUntil(t, admin, "weak waiter queued", sqlLockWaiters, "weak-0", 1)
	for i := 1; i <= 3; i++ {
		startStmt(t, dsn, fmt.Sprintf("weak-%d", i), "BEGIN; LOCK TABLE u IN SHARE UPDATE EXCLUSIVE MODE; COMMIT")
	}
	waitUntil(t, admin, "weak queue formed", sqlLockWaiters, "weak-%", 4)
	return admin, blocker, weak
}

// guardedALTER is a deploy's ALTER run under lockscope's guard in front of
// stageWeakQueue's sessions, with three readers queued behind it.
type guardedALTER struct {
	p              *proc
	out            string // the recording
	admin, blocker *pgx.Conn
	weak           chan error   // the weak-lock waiter's result
	readers        []chan error // the readers' results
}

// startGuardedALTER stages the weak queue in a new database, runs psql's
// ALTER of t under lockscope with --guard-wait wait and --guard-queue
// queue, and queues three readers behind the ALTER.
func startGuardedALTER(t *testing.T, wait, queue string) guardedALTER {
	t.Helper()
	pgtest.SkipIfShort(t)
	dsn := pgtest.NewDatabase(t, srv)
	g := guardedALTER{out: filepath.Join(t.TempDir(), "rec")}
	g.admin, g.blocker, g.weak = stageWeakQueue(t, dsn)
	g.p = startRecorderEnv(t, []string{"PGAPPNAME=deploy"}, append(fastArgs(dsn, g.out), "--tail", "500ms",
		"--guard-wait", wait, "--guard-queue", queue, "--",
		psqlPath(t), "-X", "-v", "ON_ERROR_STOP=1", dsn, "-c", "ALTER TABLE t ADD COLUMN x int")...)
	waitUntil(t, g.admin, "ALTER queued", sqlLockWaiters, "deploy", 1)
	for i := range 3 {
		g.readers = append(g.readers, startStmt(t, dsn, fmt.Sprintf("reader-%d", i), "SELECT count(*) FROM t"))
	}
	waitUntil(t, g.admin, "readers queued behind the ALTER", sqlLockWaiters, "reader-%", 3)
	return g
}

var waitedRE = regexp.MustCompile(`after waiting ([0-9.]+) s for (\w+) on (\w+) with (\d+) sessions queued behind`)

func TestWrapGuardCancelsTheQueuedALTER(t *testing.T) {
	g := startGuardedALTER(t, "2s", "3")
	p, out, admin, blocker, weak, readers := g.p, g.out, g.admin, g.blocker, g.weak, g.readers

	// psql exits 1 when its statement is cancelled; lockscope passes it on.
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit status %d, want psql's 1; stderr:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "canceling statement due to user request") {
		t.Errorf("psql's error not passed through on stderr:\n%s", p.stderr.String())
	}
	// The readers proceed while the blocker still holds its lock.
	for i, r := range readers {
		select {
		case err := <-r:
			if err != nil {
				t.Errorf("reader %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("reader %d still waiting after the ALTER was cancelled", i)
		}
	}
	var blockerState string
	if err := admin.QueryRow(context.Background(), "SELECT state FROM pg_stat_activity WHERE application_name = 'blocker'").Scan(&blockerState); err != nil {
		t.Fatal(err)
	}
	if blockerState != "idle in transaction" {
		t.Errorf("root blocker state %q: the guard touched it", blockerState)
	}
	// The weak-lock waiter waited as long, with as long a queue, and was
	// left alone.
	select {
	case err := <-weak:
		t.Fatalf("the ShareUpdateExclusive waiter ended (%v): the guard touched it", err)
	default:
	}
	waitUntil(t, admin, "weak queue intact", sqlLockWaiters, "weak-%", 4)

	events, _ := readRecording(t, out)
	cancels := eventsOf(events, recording.EventGuardCancel)
	if len(cancels) != 1 {
		t.Fatalf("got %d guard_cancel events, want 1: %+v", len(cancels), events)
	}
	m := waitedRE.FindStringSubmatch(cancels[0].Message)
	if m == nil {
		t.Fatalf("guard_cancel message %q", cancels[0].Message)
	}
	waited, _ := strconv.ParseFloat(m[1], 64)
	if waited < 2 || waited > 3.5 {
		t.Errorf("cancelled after %.1f s of waiting, want about 2 s", waited)
	}
	if m[2] != "AccessExclusiveLock" || m[3] != "t" || m[4] != "3" {
		t.Errorf("guard_cancel says %s on %s with %s behind, want AccessExclusiveLock on t with 3", m[2], m[3], m[4])
	}
	if !strings.Contains(cancels[0].Message, "ALTER TABLE t ADD COLUMN x int") {
		t.Errorf("guard_cancel message %q lacks the query", cancels[0].Message)
	}
	if !strings.Contains(p.stderr.String(), "lockscope: guard cancelled pid") {
		t.Errorf("summary does not say the guard acted:\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "root blocker pid") || !strings.Contains(p.stderr.String(), "DDL pid") {
		t.Errorf("summary lacks the root blocker and DDL line:\n%s", p.stderr.String())
	}
	t.Logf("lockscope's stderr:\n%s", p.stderr.String())
	blocker.Exec(context.Background(), "ROLLBACK")
}

func TestWrapGuardBelowItsBoundsLetsTheALTERFinish(t *testing.T) {
	g := startGuardedALTER(t, "1s", "4")
	p, out, admin, blocker := g.p, g.out, g.admin, g.blocker
	// Three behind the ALTER, the guard wants four: well past its wait,
	// the ALTER is still queued.
	waitUntil(t, admin, "ALTER waited 2.5 s", sqlWaitedLonger, "2.5 s")
	waitUntil(t, admin, "ALTER still queued", sqlLockWaiters, "deploy", 1)
	if _, err := blocker.Exec(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0 (the ALTER completes); stderr:\n%s", code, p.stderr.String())
	}
	var hasX bool
	if err := admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'x')").Scan(&hasX); err != nil || !hasX {
		t.Errorf("column x not added (%v)", err)
	}
	events, _ := readRecording(t, out)
	if c := eventsOf(events, recording.EventGuardCancel); len(c) != 0 {
		t.Errorf("guard cancelled below its bounds: %+v", c)
	}
	if !strings.Contains(p.stderr.String(), "guard (wait 1s, queue 4): did not act") {
		t.Errorf("summary does not say the guard stayed idle:\n%s", p.stderr.String())
	}
}

func TestGuardRefusedWithoutTheGrant(t *testing.T) {
	pgtest.SkipIfShort(t)
	dsn := pgtest.NewDatabase(t, srv)
	admin := pgtest.Connect(t, dsn, "admin")
	if _, err := admin.Exec(context.Background(), `DROP ROLE IF EXISTS watcher; CREATE ROLE watcher LOGIN; GRANT pg_monitor TO watcher`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP ROLE IF EXISTS watcher") })
	marker := filepath.Join(t.TempDir(), "ran")
	out := filepath.Join(t.TempDir(), "rec")
	p := startRecorder(t, "", append(fastArgs(dsn+" user=watcher", out), "--guard-wait", "2s", "--", "touch", marker)...)
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "GRANT pg_signal_backend TO watcher") {
		t.Errorf("last stderr line %q does not name the missing grant", last)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although the capture was refused")
	}
	// With the grant it starts.
	if _, err := admin.Exec(context.Background(), "GRANT pg_signal_backend TO watcher"); err != nil {
		t.Fatal(err)
	}
	p = startRecorder(t, "", append(fastArgs(dsn+" user=watcher", out), "--guard-wait", "2s", "--tail", "0s", "--", "touch", marker)...)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("with pg_signal_backend: exit status %d; stderr:\n%s", code, p.stderr.String())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the command did not run")
	}
}

func TestWrapUsageErrors(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "rec")
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--out", out, "stray"}, "put the command to wrap after --", 2},
		{[]string{"--out", out, "--duration", "1s", "--", "true"}, "--duration cannot be combined", 2},
		{[]string{"--out", out, "--guard-application", "[", "--", "true"}, "--guard-application", 2},
		{[]string{"--out", out, "--guard-queue", "0", "--", "true"}, "--guard-queue 0", 2},
		{[]string{"--out", out, "--metrics-addr", "no-such-host.invalid:1", "--", "true"}, "--metrics-addr no-such-host.invalid:1", 2},
		{[]string{"--out", out, "--report", "x", "--", "true"}, "unknown flag: --report", 2},
		{[]string{"--dsn", srv.DSN("postgres"), "--out", out, "--", "no-such-command-lockscope"}, `command "no-such-command-lockscope"`, 1},
	} {
		cmd := exec.Command(bin(t), tc.args...)
		msg, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(string(msg), tc.want) {
			t.Errorf("%v: exit %d, output %q; want exit %d and %q", tc.args, code, msg, tc.code, tc.want)
		}
	}
}

// startRecorderEnv is startRecorder with extra environment variables.
func startRecorderEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin(t), args...)
	cmd.Env = append(slices.Clone(os.Environ()), env...)
	return startProc(t, cmd)
}

// Ctrl-C in a terminal reaches the whole foreground process group, the
// wrapped command included: lockscope must not forward it a second time.
// script(1) gives the run a terminal; writing ^C to it is a Ctrl-C.
func TestWrapCtrlCReachesTheCommandOnce(t *testing.T) {
	pgtest.SkipIfShort(t)
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("script not found: apt-get install bsdutils")
	}
	dir := t.TempDir()
	ints := filepath.Join(dir, "ints")
	ready := ints + ".ready"
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The shell script starts execs lockscope, so no shell stands between
	// the terminal and lockscope: a non-interactive shell would itself die
	// of the Ctrl-C, and whether it does depends on which shell $SHELL is.
	// script -e exits with lockscope's own status.
	inner := fmt.Sprintf("LOCKSCOPE_TEST_COUNT_SIGINT=%s exec %s --dsn '%s' --out %s --tail 0s -- %s",
		ints, bin(t), srv.DSN("postgres"), filepath.Join(dir, "rec"), self)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, scriptBin, "-qec", inner, "/dev/null")
	cmd.Env = append(os.Environ(), "SHELL=/bin/sh")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the command did not start:\n%s", out.String())
		}
	}
	stdin.Write([]byte{3}) // ^C
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Errorf("lockscope ended with %v, want the command's exit status 7:\n%s", err, out.String())
	}
	data, err := os.ReadFile(ints)
	if err != nil {
		t.Fatalf("the command never got the interrupt: %v\n%s", err, out.String())
	}
	t.Logf("ints %q; out:\n%s", data, out.String())
	if n := strings.Count(string(data), "INT\n"); n != 1 {
		t.Errorf("the command got %d interrupts for one Ctrl-C, want 1", n)
	}
}

// countSIGINT is the wrapped command of TestWrapCtrlCReachesTheCommandOnce:
// it appends a line to out for every SIGINT it gets in 3 s, then exits 7.
// Go's signal delivery counts two interrupts a moment apart as two, where
// a shell's trap would merge them.
func countSIGINT(out string) {
	c := make(chan os.Signal, 16)
	signal.Notify(c, os.Interrupt)
	if err := os.WriteFile(out+".ready", nil, 0o600); err != nil {
		os.Exit(1)
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		os.Exit(1)
	}
	for end := time.After(3 * time.Second); ; {
		select {
		case <-c:
			f.WriteString("INT\n")
		case <-end:
			f.Close()
			os.Exit(7)
		}
	}
}

// pg_signal_backend cannot cancel a superuser's query: the guard's
// attempt is refused, recorded as a warning once, and the DDL completes
// when its blocker ends.
func TestGuardCannotCancelASuperuser(t *testing.T) {
	pgtest.SkipIfShort(t)
	dsn := pgtest.NewDatabase(t, srv)
	ctx := context.Background()
	admin := pgtest.Connect(t, dsn, "admin")
	if _, err := admin.Exec(ctx, `DROP ROLE IF EXISTS guard_only; CREATE ROLE guard_only LOGIN IN ROLE pg_monitor, pg_signal_backend;
		CREATE TABLE t (id int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP ROLE IF EXISTS guard_only") })
	blocker := pgtest.Connect(t, dsn, "blocker")
	if _, err := blocker.Exec(ctx, "BEGIN; UPDATE t SET id = 2"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rec")
	p := startRecorderEnv(t, []string{"PGAPPNAME=deploy"}, append(fastArgs(dsn+" user=guard_only", out), "--tail", "0s",
		"--guard-wait", "1s", "--guard-queue", "1", "--",
		psqlPath(t), "-X", "-v", "ON_ERROR_STOP=1", dsn, "-c", "ALTER TABLE t ADD COLUMN x int")...)
	waitUntil(t, admin, "ALTER queued", sqlLockWaiters, "deploy", 1)
	startStmt(t, dsn, "reader", "SELECT count(*) FROM t")
	waitUntil(t, admin, "ALTER waited 2 s", sqlWaitedLonger, "2 s")
	if _, err := blocker.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	events, _ := readRecording(t, out)
	if c := eventsOf(events, recording.EventGuardCancel); len(c) != 0 {
		t.Errorf("guard_cancel events %+v: a superuser's query cannot be cancelled with pg_signal_backend", c)
	}
	var refused []string
	for _, e := range eventsOf(events, recording.EventWarning) {
		if strings.Contains(e.Message, "guard: could not cancel pid") {
			refused = append(refused, e.Message)
		}
	}
	if len(refused) != 1 || !strings.Contains(strings.ToLower(refused[0]), "superuser") {
		t.Errorf("guard warnings %q, want one naming the superuser", refused)
	}
}
