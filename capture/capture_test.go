package capture_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

// srv is the package's throwaway server; each test takes a fresh database.
var srv *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, &srv, pgtest.Options{MaxConnections: 200}))
}

func fastConfig(dsn, out string) capture.Config {
	return capture.Config{
		DSN: dsn, Out: out,
		ProbeInterval: 50 * time.Millisecond, FullInterval: 500 * time.Millisecond,
		BurstInterval: 100 * time.Millisecond, BurstHold: 500 * time.Millisecond,
		OdooInterval: 200 * time.Millisecond,
	}
}

// monitorRole creates a login role with only pg_monitor and a password,
// and returns a DSN for it.
func monitorRole(t *testing.T, adminDSN, password string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	role := fmt.Sprintf("ls_mon_%d", time.Now().UnixNano()%1e9)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE pg_monitor", role, password)); err != nil {
		t.Fatal(err)
	}
	cc, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s sslmode=disable", cc.Host, cc.Port, cc.Database, role, password)
}

// segments lists the recording's segments.
func segments(t *testing.T, dir string) []recording.Segment {
	t.Helper()
	segs, err := recording.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// onlySegment returns the recording's only segment.
func onlySegment(t *testing.T, dir string) recording.Segment {
	t.Helper()
	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("recording has %d segments, want 1", len(segs))
	}
	return segs[0]
}

func readTable[T any](t *testing.T, segs []recording.Segment, table string) []T {
	t.Helper()
	var out []T
	for _, s := range segs {
		p, ok := s.Files[table]
		if !ok {
			continue
		}
		rows, _, err := recording.ReadTable[T](p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
	}
	return out
}

func TestCaptureRecordsStagedDDLQueue(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewScenarioDatabase(t, srv)
	const password = "s3cret-Pa55word"
	dsn := monitorRole(t, db, password)
	out := filepath.Join(t.TempDir(), "rec")
	r := pgtest.StartCapture(t, fastConfig(dsn, out))
	r.WaitTick("a first sample", func(recording.Tick) bool { return true })

	const workers = 6
	inc, err := scenario.CronVsAlter(ctx, db, scenario.Options{Table: "account_move", Workers: workers, AppPrefix: "erp"})
	if err != nil {
		t.Fatal(err)
	}
	defer inc.Close()
	truth := inc.Truth
	// Three full samples that see the whole queue.
	seen := 0
	r.WaitTick("the whole queue in three full samples", func(tk recording.Tick) bool {
		if tk.Kind == recording.TickFull && tk.LockWaiters >= workers+1 {
			seen++
		}
		return seen >= 3
	})
	if err := inc.TerminateRoot(ctx); err != nil {
		t.Fatal(err)
	}
	r.WaitTick("a drained queue", func(tk recording.Tick) bool {
		return tk.Kind == recording.TickFull && tk.LockWaiters == 0
	})
	r.Stop()
	nticks := r.CountTicks()

	seg := onlySegment(t, out)
	segs := []recording.Segment{seg}
	ticks := readTable[recording.Tick](t, segs, recording.TableTicks)
	if len(ticks) != nticks {
		t.Errorf("recording has %d ticks, the recorder reported %d", len(ticks), nticks)
	}
	for i := 1; i < len(ticks); i++ {
		if ticks[i].SampleID <= ticks[i-1].SampleID {
			t.Fatalf("sample ids not increasing: %d after %d", ticks[i].SampleID, ticks[i-1].SampleID)
		}
	}
	if seg.Meta.LockWaitTicks == 0 || seg.Meta.MaxLockWaiters < workers+1 {
		t.Errorf("segment summary: lock_wait_ticks=%d max_lock_waiters=%d, want >0 and >=%d", seg.Meta.LockWaitTicks, seg.Meta.MaxLockWaiters, workers+1)
	}
	if !seg.Meta.ReadAllStats {
		t.Error("a pg_monitor role was recorded as lacking pg_read_all_stats")
	}

	// The relation is named.
	rels := readTable[recording.Relation](t, segs, recording.TableRelations)
	var relOID int64
	for _, rel := range rels {
		if rel.Name == "account_move" && rel.Schema == "public" {
			relOID = rel.Relation
		}
	}
	if relOID == 0 {
		t.Fatalf("relations table does not name account_move: %+v", rels)
	}

	// Activity shows the DDL and every worker waiting on a Lock, with
	// their application names and query text.
	acts := readTable[recording.Activity](t, segs, recording.TableActivity)
	waitingSamples := map[int32]int{}
	for _, a := range acts {
		if a.WaitEventType == "Lock" {
			waitingSamples[a.PID]++
		}
		if a.PID == truth.DDL.PID && a.WaitEventType == "Lock" {
			if !strings.HasPrefix(a.Query, "ALTER TABLE account_move") || a.ApplicationName != truth.DDL.ApplicationName {
				t.Errorf("DDL row: query %q app %q", a.Query, a.ApplicationName)
			}
			if a.BackendStart != truth.DDL.BackendStart.UnixMicro() {
				t.Errorf("DDL backend_start %d, want %d", a.BackendStart, truth.DDL.BackendStart.UnixMicro())
			}
		}
		if a.PID == truth.Root.PID && a.State == "idle in transaction" && a.XactStart == 0 {
			t.Errorf("root blocker idle in transaction without xact_start")
		}
	}
	for _, s := range append([]scenario.TruthSession{truth.DDL}, truth.Waiters...) {
		if waitingSamples[s.PID] < 3 {
			t.Errorf("%s (pid %d) recorded waiting in %d samples, want >= 3", s.Name, s.PID, waitingSamples[s.PID])
		}
	}
	if waitingSamples[truth.Root.PID] != 0 {
		t.Errorf("root blocker recorded as waiting")
	}

	// Edges: the DDL is blocked by the cron; every worker by the DDL.
	edges := readTable[recording.Edge](t, segs, recording.TableEdges)
	blockers := map[int32]map[int32]bool{}
	for _, e := range edges {
		if blockers[e.PID] == nil {
			blockers[e.PID] = map[int32]bool{}
		}
		blockers[e.PID][e.BlockingPID] = true
	}
	if !blockers[truth.DDL.PID][truth.Root.PID] {
		t.Errorf("no edge DDL %d -> root %d; edges of DDL: %v", truth.DDL.PID, truth.Root.PID, blockers[truth.DDL.PID])
	}
	for _, w := range truth.Waiters {
		if !blockers[w.PID][truth.DDL.PID] {
			t.Errorf("no edge worker %d -> DDL %d; got %v", w.PID, truth.DDL.PID, blockers[w.PID])
		}
	}

	// Locks: the DDL's AccessExclusiveLock request is not granted, the
	// cron's RowExclusiveLock is.
	// Columns the server's version lacks are recorded as absent: waitstart
	// and query_id came with PostgreSQL 14.
	var wantAbsent []string
	if seg.Meta.ServerVersionNum < 140000 {
		wantAbsent = []string{"pg_stat_activity.query_id", "pg_locks.waitstart"}
	}
	if !slices.Equal(seg.Meta.AbsentColumns, wantAbsent) && !(len(wantAbsent) == 0 && len(seg.Meta.AbsentColumns) == 0) {
		t.Errorf("absent columns %v on server %d, want %v", seg.Meta.AbsentColumns, seg.Meta.ServerVersionNum, wantAbsent)
	}
	hasWaitstart := len(wantAbsent) == 0
	locks := readTable[recording.Lock](t, segs, recording.TableLocks)
	var ddlWaits, rootHolds bool
	for _, l := range locks {
		if l.LockType == "relation" && l.Relation == relOID {
			if l.PID == truth.DDL.PID && l.Mode == "AccessExclusiveLock" && !l.Granted && (l.WaitStart != 0) == hasWaitstart {
				ddlWaits = true
			}
			if l.PID == truth.Root.PID && l.Mode == "RowExclusiveLock" && l.Granted {
				rootHolds = true
			}
		}
	}
	if !ddlWaits || !rootHolds {
		t.Errorf("locks: DDL waiting for AccessExclusiveLock (waitstart present: %v)=%v, root holding RowExclusiveLock=%v", hasWaitstart, ddlWaits, rootHolds)
	}

	// Permissions, and no password anywhere in the recording.
	err = filepath.Walk(out, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := recording.FileMode
		if fi.IsDir() {
			want = recording.DirMode
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		if !fi.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.Contains(string(data), password) {
				t.Errorf("%s contains the DSN's password", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := recording.Journals(out); len(js) != 0 {
		t.Errorf("journals left after a clean stop: %v", js)
	}
	if _, err := os.Stat(filepath.Join(out, recording.ManifestFile)); err != nil {
		t.Errorf("no manifest: %v", err)
	}
}

func TestCaptureWithoutPgMonitorWarnsAndStillSeesWaiters(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewScenarioDatabase(t, srv)
	admin := pgtest.Connect(t, db, "")
	role := fmt.Sprintf("ls_plain_%d", time.Now().UnixNano()%1e9)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	cc, _ := pgx.ParseConfig(db)
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable", cc.Host, cc.Port, cc.Database, role)

	out := t.TempDir()
	r := pgtest.StartCapture(t, fastConfig(dsn, out))
	inc, err := scenario.CronVsAlter(ctx, db, scenario.Options{Table: "sale_order", Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer inc.Close()
	r.WaitTick("the queue seen through pg_locks", func(tk recording.Tick) bool {
		return tk.Kind == recording.TickFull && tk.LockWaiters >= 4
	})
	if err := inc.TerminateRoot(ctx); err != nil {
		t.Fatal(err)
	}
	r.Stop()

	segs := segments(t, out)
	if segs[0].Meta.ReadAllStats {
		t.Error("a role without pg_monitor recorded as able to read all stats")
	}
	events := readTable[recording.Event](t, segs, recording.TableEvents)
	warned := 0
	for _, e := range events {
		if e.Kind == recording.EventWarning && strings.Contains(e.Message, "pg_read_all_stats") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("privilege warnings: got %d, want exactly 1", warned)
	}
	edges := readTable[recording.Edge](t, segs, recording.TableEdges)
	found := false
	for _, e := range edges {
		if e.PID == inc.Truth.DDL.PID && e.BlockingPID == inc.Truth.Root.PID {
			found = true
		}
	}
	if !found {
		t.Error("no DDL -> root edge recorded without pg_monitor")
	}
	hidden := false
	for _, a := range readTable[recording.Activity](t, segs, recording.TableActivity) {
		if a.PID == inc.Truth.DDL.PID && a.Query == "<insufficient privilege>" {
			hidden = true
		}
	}
	if !hidden {
		t.Error("expected other roles' query text to read <insufficient privilege>")
	}
}

func TestCaptureBadDSNFailsWithoutPassword(t *testing.T) {
	pgtest.SkipIfShort(t)
	const password = "Do-Not-Print-Me-42"
	cc, _ := pgx.ParseConfig(srv.DSN("postgres"))
	cases := map[string]string{
		"wrong password": fmt.Sprintf("host=%s port=%d dbname=postgres user=nobody_here password=%s sslmode=disable connect_timeout=5", cc.Host, cc.Port, password),
		"closed port":    fmt.Sprintf("host=127.0.0.1 port=1 dbname=postgres user=postgres password=%s sslmode=disable connect_timeout=5", password),
		"bad url":        fmt.Sprintf("postgres://postgres:%s@127.0.0.1:notaport/db", password),
	}
	for name, dsn := range cases {
		t.Run(name, func(t *testing.T) {
			err := capture.Run(context.Background(), capture.Config{DSN: dsn, Out: t.TempDir()})
			if err == nil {
				t.Fatal("capture with a bad DSN succeeded")
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	err := capture.Run(context.Background(), capture.Config{DSN: cases["closed port"], Out: t.TempDir()})
	if !errors.Is(err, capture.ErrConnect) {
		t.Errorf("closed port: got %v, want ErrConnect", err)
	}
	// The server's refusal keeps its SQLSTATE for callers (class 28:
	// invalid authorization).
	err = capture.Run(context.Background(), capture.Config{DSN: cases["wrong password"], Out: t.TempDir()})
	var pgErr *pgconn.PgError
	if !errors.Is(err, capture.ErrConnect) || !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "28") {
		t.Errorf("unknown role: got %v (%T), want ErrConnect wrapping the server's *pgconn.PgError of class 28", err, err)
	}
}

func TestCaptureUnwritableDirectory(t *testing.T) {
	pgtest.SkipIfShort(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := capture.Run(context.Background(), capture.Config{DSN: srv.DSN("postgres"), Out: filepath.Join(file, "rec")})
	if !errors.Is(err, capture.ErrStorage) {
		t.Fatalf("got %v, want ErrStorage", err)
	}
}

func TestCaptureSurvivesServerRestart(t *testing.T) {
	pgtest.SkipIfShort(t)
	ctx := context.Background()
	// A server of its own: restarting the package's would disturb other tests.
	own, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Stop()
	out := t.TempDir()
	r := pgtest.StartCapture(t, fastConfig(own.DSN("postgres"), out))
	first := r.WaitTick("a first sample", func(recording.Tick) bool { return true })

	if err := own.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	back := r.WaitTick("a sample from the restarted server", func(tk recording.Tick) bool { return tk.CapturePID != first.CapturePID })
	r.WaitTick("more samples", func(tk recording.Tick) bool { return tk.SampleID >= back.SampleID+5 })
	r.Stop()

	segs := segments(t, out)
	events := readTable[recording.Event](t, segs, recording.TableEvents)
	var kinds []string
	var gap *recording.Event
	for i, e := range events {
		kinds = append(kinds, e.Kind)
		if e.Kind == recording.EventGap {
			gap = &events[i]
		}
	}
	for _, want := range []string{recording.EventStart, recording.EventConnect, recording.EventDisconnect, recording.EventGap, recording.EventStop} {
		if !slices.Contains(kinds, want) {
			t.Errorf("events %v lack %q", kinds, want)
		}
	}
	if gap == nil {
		t.Fatal("no gap recorded")
	}
	if gap.GapEnd <= gap.GapStart {
		t.Errorf("gap [%d, %d] is empty", gap.GapStart, gap.GapEnd)
	}
	ticks := readTable[recording.Tick](t, segs, recording.TableTicks)
	for _, tk := range ticks {
		// Gaps are stated on the samples' (the server's) clock.
		if tk.TS > gap.GapStart && tk.TS < gap.GapEnd {
			t.Errorf("tick %d at %d lies inside the recorded gap [%d, %d]", tk.SampleID, tk.TS, gap.GapStart, gap.GapEnd)
		}
	}
	pids := map[int32]bool{}
	for _, tk := range ticks {
		pids[tk.CapturePID] = true
	}
	if len(pids) != 2 {
		t.Errorf("ticks come from %d recorder backends, want 2 (before and after the restart)", len(pids))
	}
}

func TestCaptureRotatesSegments(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := t.TempDir()
	cfg := fastConfig(srv.DSN("postgres"), out)
	cfg.SegmentDuration = time.Second
	r := pgtest.StartCapture(t, cfg)
	first := r.WaitTick("a first sample", func(recording.Tick) bool { return true })
	r.WaitTick("three seconds of samples", func(tk recording.Tick) bool { return tk.ClientTS-first.ClientTS > 3e6 })
	r.Stop()
	segs := segments(t, out)
	if len(segs) < 3 {
		t.Fatalf("got %d segments after 3 s with 1 s rotation, want >= 3", len(segs))
	}
	total := 0
	for i, s := range segs {
		total += int(s.Meta.Ticks)
		if i > 0 && s.Meta.FirstSampleID != segs[i-1].Meta.LastSampleID+1 {
			t.Errorf("segment %s starts at sample %d, previous ended at %d", s.Meta.Segment, s.Meta.FirstSampleID, segs[i-1].Meta.LastSampleID)
		}
		// Every segment names its relations on its own.
		if s.Meta.FullTicks > 0 {
			if _, ok := s.Files[recording.TableRelations]; !ok {
				t.Errorf("segment %s with full samples has no relations file", s.Meta.Segment)
			}
		}
	}
	if total != r.CountTicks() {
		t.Errorf("segments hold %d ticks, recorder reported %d", total, r.CountTicks())
	}
}

func TestCaptureSamplesPgBouncer(t *testing.T) {
	pgtest.SkipIfShort(t)
	ctx := context.Background()
	db := pgtest.NewDatabase(t, srv)
	bouncer, err := pgtest.StartPgBouncer(ctx, srv, pgtest.PgBouncerOptions{PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer bouncer.Stop()
	cc, _ := pgx.ParseConfig(db)

	// A client through the pooler holds a server connection in an open
	// transaction, so SHOW SERVERS links it to its backend.
	client, err := pgx.Connect(ctx, bouncer.DSN(cc.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(ctx)
	if _, err := client.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var backend int32
	if err := client.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	cfg := fastConfig(db, out)
	cfg.PgBouncerDSN = bouncer.AdminDSN()
	r := pgtest.StartCapture(t, cfg)
	r.WaitTick("two full samples", func(tk recording.Tick) bool { return tk.Kind == recording.TickFull && tk.SampleID >= 2 })
	r.Stop()

	segs := segments(t, out)
	if !segs[0].Meta.PgBouncer {
		t.Error("metadata does not say PgBouncer was sampled")
	}
	pools := readTable[recording.PgBouncerPool](t, segs, recording.TablePgBouncerPools)
	var pool *recording.PgBouncerPool
	for i := range pools {
		if pools[i].Database == cc.Database {
			pool = &pools[i]
		}
	}
	if pool == nil {
		t.Fatalf("no SHOW POOLS row for %s in %+v", cc.Database, pools)
	}
	if pool.ClActive < 1 || pool.SvActive < 1 || pool.PoolMode != "transaction" {
		t.Errorf("pool row %+v: want cl_active >= 1, sv_active >= 1, pool_mode transaction", *pool)
	}
	servers := readTable[recording.PgBouncerServer](t, segs, recording.TablePgBouncerServers)
	linked := false
	for _, s := range servers {
		if s.RemotePID == backend && s.Database == cc.Database && s.State == "active" {
			linked = true
		}
	}
	if !linked {
		t.Errorf("no SHOW SERVERS row with remote_pid %d: %+v", backend, servers)
	}
	acts := readTable[recording.Activity](t, segs, recording.TableActivity)
	if !slices.ContainsFunc(acts, func(a recording.Activity) bool { return a.PID == backend }) {
		t.Errorf("the pooled backend %d is not in the activity table", backend)
	}
}

func TestCaptureOdooModulesNeverQueues(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewScenarioDatabase(t, srv)
	mig := pgtest.Connect(t, db, "")
	if _, err := mig.Exec(ctx, "UPDATE ir_module_module SET state = 'to upgrade' WHERE name IN ('stock', 'sale')"); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cfg := fastConfig(db, out)
	// Were the module poll to wait for its lock, lock_timeout would let it
	// wait this long, and the sample's round trip would show it.
	cfg.LockTimeout = 3 * time.Second
	cfg.StatementTimeout = 5 * time.Second
	r := pgtest.StartCapture(t, cfg)
	r.WaitTick("full samples", func(tk recording.Tick) bool { return tk.Kind == recording.TickFull && tk.SampleID >= 3 })

	// A migration takes ACCESS EXCLUSIVE on ir_module_module and keeps it:
	// the recorder must go on sampling and never wait for that lock.
	if _, err := mig.Exec(ctx, "BEGIN; LOCK TABLE ir_module_module IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	locked := r.WaitTick("a sample while the table is locked", func(tk recording.Tick) bool { return tk.Kind == recording.TickFull })
	r.WaitTick("a second of samples under the lock", func(tk recording.Tick) bool {
		return tk.Kind == recording.TickFull && tk.ClientTS-locked.ClientTS > 1e6
	})
	if _, err := mig.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	r.Stop()

	segs := segments(t, out)
	if !segs[0].Meta.Odoo {
		t.Error("metadata does not flag an Odoo database")
	}
	mods := readTable[recording.OdooModule](t, segs, recording.TableOdooModules)
	got := map[string]string{}
	for _, m := range mods {
		got[m.Name] = m.State
	}
	if got["stock"] != "to upgrade" || got["sale"] != "to upgrade" || len(got) != 2 {
		t.Errorf("odoo modules recorded: %v, want stock and sale to upgrade", got)
	}
	ticks := readTable[recording.Tick](t, segs, recording.TableTicks)
	for _, tk := range ticks {
		if tk.QueryMicros >= cfg.LockTimeout.Microseconds() {
			t.Errorf("sample %d took %d µs: the recorder waited for the migration's lock", tk.SampleID, tk.QueryMicros)
		}
	}
	for _, a := range readTable[recording.Activity](t, segs, recording.TableActivity) {
		if a.ApplicationName == capture.ApplicationName && a.WaitEventType == "Lock" {
			t.Errorf("the recorder's session waited on a lock at %d", a.TS)
		}
	}
	for _, e := range readTable[recording.Edge](t, segs, recording.TableEdges) {
		for _, tk := range ticks {
			if tk.SampleID == e.SampleID && tk.CapturePID == e.PID {
				t.Errorf("the recorder's backend was blocked by %d", e.BlockingPID)
			}
		}
	}
}
