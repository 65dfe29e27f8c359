package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// BenchmarkRecorder measures the recorder against a server with 50, 200 and
// 500 backends, a tenth of them queued behind a DDL:
//
//   - server-us/sample: CPU of the recorder's backend per full snapshot
//     (from /proc/PID/schedstat; the median), and floor-us: the same for the bare
//     `SELECT * FROM pg_stat_activity` + `SELECT * FROM pg_locks`, measured in
//     the same run; x-floor is their ratio;
//   - bytes/sample: Parquet bytes on disk per full snapshot;
//   - client-us/tick: the recorder's own CPU per sample, and rss-MiB: its
//     peak resident memory (the lean binary, as a separate process);
//   - probe-us: server CPU of the cheap lock-waiter count, and default-%cpu:
//     the share of one server core the default rates take while nothing
//     waits (a probe every 250 ms, a full snapshot every 5 s).
//
// Run with `make bench` (go test -bench . -benchtime 1x).
func BenchmarkRecorder(b *testing.B) {
	if srv == nil {
		b.Skip("needs a PostgreSQL server; skipped with -short")
	}
	ctx := context.Background()
	own, err := pgtest.Start(ctx, pgtest.Options{MaxConnections: 620, Settings: map[string]string{"max_locks_per_transaction": "128"}})
	if err != nil {
		b.Fatal(err)
	}
	defer own.Stop()
	dsn, err := own.CreateDatabase(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	load := newLoad(b, dsn)
	defer load.close()
	for _, n := range []int{50, 200, 500} {
		load.grow(b, n)
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			for range b.N {
				floor := serverCPU(b, dsn, 100, "SELECT * FROM pg_stat_activity", "SELECT * FROM pg_locks")
				probe := serverCPU(b, dsn, 100, "SELECT statement_timestamp(), (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock')")
				// The full sample's pg_prepared_xacts read (two prepared
				// transactions exist), sent in the same batch.
				prepared := serverCPU(b, dsn, 100, "SELECT transaction::text::int8, gid, prepared, owner::text, database::text FROM pg_prepared_xacts")
				r := runRecorder(b, dsn, 30*time.Second)
				b.ReportMetric(r.serverUS, "server-us/sample")
				b.ReportMetric(floor, "floor-us")
				b.ReportMetric(r.serverUS/floor, "x-floor")
				b.ReportMetric(r.bytesPerSample, "bytes/sample")
				b.ReportMetric(r.clientUS, "client-us/tick")
				b.ReportMetric(r.rssMiB, "rss-MiB")
				b.ReportMetric(float64(r.fullTicks), "samples")
				b.ReportMetric(probe, "probe-us")
				b.ReportMetric(prepared, "prepared-xacts-us")
				// The default rates: a probe every 250 ms, a full snapshot every 5 s.
				b.ReportMetric((4*probe+r.serverUS/5)/1e4, "default-%cpu")
			}
		})
	}
}

// load holds the benchmark's backends: one cron-like transaction holding
// RowExclusiveLock on bench_hot, one ALTER TABLE waiting for it, and the
// rest either queued behind the ALTER (a tenth) or idle in transaction
// holding a few locks of their own.
type load struct {
	dsn    string
	admin  *pgx.Conn
	conns  []*pgx.Conn
	holder *pgx.Conn
	ddl    *pgx.Conn
}

func newLoad(b *testing.B, dsn string) *load {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	l := &load{dsn: dsn, admin: admin}
	if _, err := admin.Exec(ctx, "CREATE TABLE bench_hot (id int PRIMARY KEY, v int); INSERT INTO bench_hot SELECT g, g FROM generate_series(1, 100) g; CREATE TABLE bench_other (id int PRIMARY KEY, v int); INSERT INTO bench_other SELECT g, g FROM generate_series(1, 1000) g"); err != nil {
		b.Fatal(err)
	}
	if l.holder, err = l.connect("odoo-cron"); err != nil {
		b.Fatal(err)
	}
	if _, err := l.holder.Exec(ctx, "BEGIN; UPDATE bench_hot SET v = v + 1 WHERE id = 1"); err != nil {
		b.Fatal(err)
	}
	for i := range 2 {
		if _, err := admin.Exec(ctx, fmt.Sprintf("BEGIN; UPDATE bench_other SET v = v WHERE id = %d; PREPARE TRANSACTION 'bench-%d'", i+10, i)); err != nil {
			b.Fatal(err)
		}
	}
	if l.ddl, err = l.connect("odoo-upgrade"); err != nil {
		b.Fatal(err)
	}
	go l.ddl.Exec(context.Background(), "ALTER TABLE bench_hot ADD COLUMN w int")
	return l
}

func (l *load) connect(app string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(l.dsn)
	if err != nil {
		return nil, err
	}
	cc.RuntimeParams["application_name"] = app
	return pgx.ConnectConfig(context.Background(), cc)
}

// grow opens backends until there are n besides the admin connection.
func (l *load) grow(b *testing.B, n int) {
	ctx := context.Background()
	for i := len(l.conns) + 2; i < n; i++ {
		c, err := l.connect(fmt.Sprintf("odoo-%d", 1000+i))
		if err != nil {
			b.Fatal(err)
		}
		l.conns = append(l.conns, c)
		if i%10 == 0 {
			go c.Exec(context.Background(), "SELECT count(*) FROM bench_hot")
		} else if _, err := c.Exec(ctx, fmt.Sprintf("BEGIN; SELECT v FROM bench_other WHERE id = %d", i)); err != nil {
			b.Fatal(err)
		}
	}
	// Wait until the queue is visible.
	want := (n - 2 + 9) / 10
	deadline := time.Now().Add(60 * time.Second)
	for {
		var waiting int
		if err := l.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").Scan(&waiting); err != nil {
			b.Fatal(err)
		}
		if waiting >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d backends waiting after 60s", waiting, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *load) close() {
	ctx := context.Background()
	l.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	l.admin.Close(ctx)
}

// schedstat returns a backend's CPU time in microseconds.
func schedstat(b *testing.B, pid int32) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		b.Fatal(err)
	}
	ns, err := strconv.ParseInt(string(bytes.Fields(data)[0]), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return float64(ns) / 1000
}

// serverCPU is the median server CPU, in microseconds, of running the
// statements once (for the floor: the two bare scans).
func serverCPU(b *testing.B, dsn string, rounds int, statements ...string) float64 {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var pid int32
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	scan := func() {
		for _, q := range statements {
			rows, err := conn.Query(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			for rows.Next() {
				rows.RawValues()
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range 3 { // warm the plan and catalog caches, as the recorder's are
		scan()
	}
	costs := make([]float64, rounds)
	for i := range rounds {
		start := schedstat(b, pid)
		scan()
		costs[i] = schedstat(b, pid) - start
	}
	return median(costs)
}

// median is robust to the odd round that a busy machine slows down.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

type recorderRun struct {
	serverUS, clientUS, bytesPerSample, rssMiB float64
	fullTicks                                  int
}

// runRecorder runs the lean recorder at its burst rate (the queue keeps it
// there) for d, and reads what it cost from its recording and its log.
func runRecorder(b *testing.B, dsn string, d time.Duration) recorderRun {
	out := filepath.Join(b.TempDir(), "rec")
	cmd := exec.Command(bin(b), "--dsn", dsn, "--out", out, "--duration", d.String(), "--log-format", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("recorder: %v\n%s", err, stderr.String())
	}
	var r recorderRun
	// The recorder reports its own peak RSS (VmHWM) when it stops: the
	// rusage of a child forked from this large test process would count
	// the parent's pages.
	for _, line := range bytes.Split(stderr.Bytes(), []byte("\n")) {
		var rec struct {
			Msg  string `json:"msg"`
			Peak int64  `json:"peak_rss_kib"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "capture stopped" {
			r.rssMiB = float64(rec.Peak) / 1024
		}
	}
	if r.rssMiB == 0 {
		b.Fatalf("recorder did not report its peak RSS:\n%s", stderr.String())
	}
	segs, err := recording.List(out)
	if err != nil {
		b.Fatal(err)
	}
	var bytesTotal int64
	var server []float64
	var client float64
	var ticks int
	for _, s := range segs {
		bytesTotal += s.Bytes
		rows, _, err := recording.ReadTable[recording.Tick](s.Files[recording.TableTicks])
		if err != nil {
			b.Fatal(err)
		}
		for i, t := range rows {
			ticks++
			client += float64(t.ClientMicros)
			if t.Kind != recording.TickFull || i < 2 { // the first samples warm caches
				continue
			}
			r.fullTicks++
			if t.ServerMicros > 0 {
				server = append(server, float64(t.ServerMicros))
			}
		}
	}
	if len(server) == 0 {
		b.Fatal("no server CPU measured: is the server local?")
	}
	r.serverUS = median(server)
	r.clientUS = client / float64(ticks)
	r.bytesPerSample = float64(bytesTotal) / float64(r.fullTicks+2)
	return r
}
