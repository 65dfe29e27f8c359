// Package reliability holds the harness behind lockscope's proof of
// reliability: the recorder's real binary run against a throwaway
// PostgreSQL under a pgbench workload, faults injected from outside, and
// the recording checked afterwards. The fault tests use it, and so do the
// overhead and soak programs (reliability/overhead, reliability/soak).
package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// Build compiles a command of this module (e.g. "./cmd/lockscope-capture")
// into dir and returns the binary's path.
func Build(root, pkg, dir string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// ModuleRoot finds the module's root from the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Recorder is a running recorder process.
type Recorder struct {
	Cmd    *exec.Cmd
	Out    string
	stderr bytes.Buffer
	mu     sync.Mutex
	done   chan struct{}
	err    error
}

// lockedBuffer lets the process write stderr while tests read it.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// StartRecorder runs bin capture-style: --dsn dsn --out out plus args.
func StartRecorder(bin, dsn, out string, args ...string) (*Recorder, error) {
	return StartRecorderAs(nil, bin, dsn, out, args...)
}

// StartRecorderAs runs the recorder as another user (nil: this one): file
// permissions bind it, as they do not bind root.
func StartRecorderAs(cred *syscall.Credential, bin, dsn, out string, args ...string) (*Recorder, error) {
	return start(cred, exec.Command(bin, append([]string{"--dsn", dsn, "--out", out}, args...)...), out)
}

// StartRecorderLimited runs the recorder under a file-size limit (sh's
// ulimit -f, in KiB), which fails its writes as a full disk does, without
// root.
func StartRecorderLimited(fileKiB int, bin, dsn, out string, args ...string) (*Recorder, error) {
	all := append([]string{"-c", fmt.Sprintf(`ulimit -f %d && exec "$0" "$@"`, fileKiB), bin, "--dsn", dsn, "--out", out}, args...)
	return start(nil, exec.Command("sh", all...), out)
}

func start(cred *syscall.Credential, cmd *exec.Cmd, out string) (*Recorder, error) {
	r := &Recorder{Out: out, done: make(chan struct{}), Cmd: cmd}
	if cred != nil {
		r.Cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	r.Cmd.Stderr = lockedWriter{&r.mu, &r.stderr}
	r.Cmd.Stdout = lockedWriter{&r.mu, &r.stderr}
	if err := r.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		r.err = r.Cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

// Stderr is what the recorder has logged so far.
func (r *Recorder) Stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

// Running tells whether the process is still alive.
func (r *Recorder) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Wait waits up to d for the process to exit and returns its exit code
// (-1 if still running).
func (r *Recorder) Wait(d time.Duration) int {
	select {
	case <-r.done:
	case <-time.After(d):
		return -1
	}
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// Stop sends SIGINT and waits for the exit code.
func (r *Recorder) Stop() int {
	if r.Running() {
		r.Cmd.Process.Signal(os.Interrupt)
	}
	return r.Wait(30 * time.Second)
}

// Kill sends SIGKILL and returns when the process is gone.
func (r *Recorder) Kill() time.Time {
	r.Cmd.Process.Kill()
	r.Wait(10 * time.Second)
	return time.Now()
}

// RSSKiB reads the process's resident set size.
func (r *Recorder) RSSKiB() int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// Check is what a recording holds after a run.
type Check struct {
	Segments int
	// Files is how many table files were read back in full; Invalid how
	// many failed to read, with the errors.
	Files   int
	Invalid []string
	// Ticks are the sample times, in order.
	Ticks []time.Time
	// Gaps are the gap events (start, end).
	Gaps [][2]time.Time
	// Recovered counts segments sealed by recovery.
	Recovered int
}

// CheckRecording reads every table file of every sealed segment of dir
// back in full, row by row, and collects the sample times and gaps.
func CheckRecording(dir string) (Check, error) {
	var c Check
	segs, err := recording.List(dir)
	if err != nil {
		return c, err
	}
	c.Segments = len(segs)
	for _, s := range segs {
		if s.Meta.Recovered {
			c.Recovered++
		}
		tables := make([]string, 0, len(s.Files))
		for t := range s.Files {
			tables = append(tables, t)
		}
		slices.Sort(tables)
		for _, t := range tables {
			c.Files++
			if err := readBack(t, s.Files[t], &c); err != nil {
				c.Invalid = append(c.Invalid, fmt.Sprintf("%s: %v", s.Files[t], err))
			}
		}
	}
	slices.SortFunc(c.Ticks, func(a, b time.Time) int { return a.Compare(b) })
	return c, nil
}

func readBack(table, path string, c *Check) error {
	switch table {
	case recording.TableTicks:
		rows, _, err := recording.ReadTable[recording.Tick](path)
		for _, r := range rows {
			c.Ticks = append(c.Ticks, time.UnixMicro(r.TS))
		}
		return err
	case recording.TableEvents:
		rows, _, err := recording.ReadTable[recording.Event](path)
		for _, r := range rows {
			if r.Kind == recording.EventGap {
				c.Gaps = append(c.Gaps, [2]time.Time{time.UnixMicro(r.GapStart), time.UnixMicro(r.GapEnd)})
			}
		}
		return err
	case recording.TableActivity:
		_, _, err := recording.ReadTable[recording.Activity](path)
		return err
	case recording.TableLocks:
		_, _, err := recording.ReadTable[recording.Lock](path)
		return err
	case recording.TableEdges:
		_, _, err := recording.ReadTable[recording.Edge](path)
		return err
	case recording.TableRelations:
		_, _, err := recording.ReadTable[recording.Relation](path)
		return err
	case recording.TablePgBouncerPools:
		_, _, err := recording.ReadTable[recording.PgBouncerPool](path)
		return err
	case recording.TablePgBouncerServers:
		_, _, err := recording.ReadTable[recording.PgBouncerServer](path)
		return err
	case recording.TableOdooModules:
		_, _, err := recording.ReadTable[recording.OdooModule](path)
		return err
	}
	return fmt.Errorf("unknown table %q", table)
}

// LongestHole is the longest stretch between consecutive samples within
// [from, to], and where it starts.
func (c Check) LongestHole(from, to time.Time) (time.Duration, time.Time) {
	var longest time.Duration
	var at time.Time
	prev := from
	for _, t := range c.Ticks {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		if d := t.Sub(prev); d > longest {
			longest, at = d, prev
		}
		prev = t
	}
	if d := to.Sub(prev); d > longest {
		longest, at = d, prev
	}
	return longest, at
}

// TicksInside counts samples strictly inside the recorded gaps.
func (c Check) TicksInside() int {
	n := 0
	for _, t := range c.Ticks {
		for _, g := range c.Gaps {
			if t.After(g[0]) && t.Before(g[1]) {
				n++
			}
		}
	}
	return n
}

// DirBytes sums the sizes of the files below dir.
func DirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Pgbench drives a workload with the server's pgbench.
type Pgbench struct {
	Bin string // pgbench's path
	DSN string
}

// FindPgbench looks for pgbench next to the server binaries, then on PATH.
func FindPgbench(binDir string) (string, error) {
	if p := filepath.Join(binDir, "pgbench"); fileExists(p) {
		return p, nil
	}
	return exec.LookPath("pgbench")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Init creates pgbench's tables at the given scale.
func (p Pgbench) Init(ctx context.Context, scale int) error {
	out, err := exec.CommandContext(ctx, p.Bin, "-i", "-q", "-s", strconv.Itoa(scale), p.DSN).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	return nil
}

// Result is one pgbench run.
type Result struct {
	Clients int
	TPS     float64
	// P99 and Mean latency from the per-transaction log.
	P99, Mean time.Duration
	Txns      int
	Failed    bool
	Output    string
}

// Run runs pgbench for d with the given clients and extra arguments
// (e.g. "-S" for select-only), logging a sample of transactions for the
// latency percentiles.
func (p Pgbench) Run(ctx context.Context, clients int, d time.Duration, extra ...string) (Result, error) {
	dir, err := os.MkdirTemp("", "lockscope-pgbench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	args := append([]string{"-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(int(d.Seconds())),
		"--log", "--log-prefix", filepath.Join(dir, "log"), "--sampling-rate", "0.2"}, extra...)
	args = append(args, p.DSN)
	cmd := exec.CommandContext(ctx, p.Bin, args...)
	out, err := cmd.CombinedOutput()
	r := Result{Clients: clients, Output: string(out)}
	if m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindStringSubmatch(r.Output); m != nil {
		r.TPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if err != nil {
		r.Failed = true
		return r, fmt.Errorf("pgbench: %v\n%s", err, lastLines(r.Output, 5))
	}
	var lat []int64
	logs, _ := filepath.Glob(filepath.Join(dir, "log*"))
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			if v, err := strconv.ParseInt(f[2], 10, 64); err == nil {
				lat = append(lat, v)
			}
		}
	}
	r.Txns = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		r.P99 = time.Duration(lat[int(math.Ceil(0.99*float64(len(lat))))-1]) * time.Microsecond
		var sum int64
		for _, v := range lat {
			sum += v
		}
		r.Mean = time.Duration(sum/int64(len(lat))) * time.Microsecond
	}
	return r, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Bench is a throwaway server with pgbench's tables and the recorder
// built, for the programs that measure over a workload.
type Bench struct {
	// Dir is a temporary directory removed by Close; the recorder binary
	// is in it.
	Dir      string
	Recorder string
	Server   *pgtest.Server
	DSN      string
	Pgbench  Pgbench
}

// NewBench builds the recorder, starts a server with opts, creates the
// database db and fills it with pgbench's tables at scale.
func NewBench(ctx context.Context, db string, opts pgtest.Options, scale int) (b *Bench, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	b = &Bench{}
	if b.Dir, err = os.MkdirTemp("", "lockscope-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.Recorder, err = Build(root, "./cmd/lockscope-capture", b.Dir); err != nil {
		return nil, err
	}
	if b.Server, err = pgtest.Start(ctx, opts); err != nil {
		return nil, err
	}
	if b.DSN, err = b.Server.CreateDatabase(ctx, db); err != nil {
		return nil, err
	}
	bin, err := FindPgbench(b.Server.BinDir)
	if err != nil {
		return nil, err
	}
	b.Pgbench = Pgbench{Bin: bin, DSN: b.DSN}
	return b, b.Pgbench.Init(ctx, scale)
}

// Close stops the server and removes the directory.
func (b *Bench) Close() {
	if b.Server != nil {
		b.Server.Stop()
	}
	os.RemoveAll(b.Dir)
}
