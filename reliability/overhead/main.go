// Command overhead measures what the recorder costs the database it
// watches: pgbench's throughput and p99 latency with no recorder, with
// lockscope at its default rates, at its burst rate (a full sample every
// 250 ms throughout), and with the runbook's own psql queries run once a
// second (what an operator would otherwise do), alternating the variants
// within each round so that drift and noise hit all of them. It also
// compares the server CPU of one recorder sample with one run of the
// runbook's queries.
//
//	go run ./reliability/overhead [-clients 200,500] [-rounds 3] [-seconds 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/reliability"
	"github.com/lockscope/lockscope/replay"
)

func main() {
	clientList := flag.String("clients", "200,500", "pgbench client counts")
	rounds := flag.Int("rounds", 3, "rounds per client count")
	secs := flag.Int("seconds", 20, "length of each pgbench run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var clients []int
	for _, c := range strings.Split(*clientList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "overhead: -clients %q: want numbers such as 200,500\n", *clientList)
			os.Exit(2)
		}
		clients = append(clients, n)
	}
	if err := run(ctx, clients, *rounds, time.Duration(*secs)*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "overhead:", err)
		os.Exit(1)
	}
}

var variants = []string{"none", "default", "burst", "runbook"}

type cell struct {
	tps []float64
	p99 []time.Duration
}

func run(ctx context.Context, clients []int, rounds int, d time.Duration) error {
	fmt.Println("starting a server, pgbench -i -s 20 …")
	bench, err := reliability.NewBench(ctx, "bench", pgtest.Options{MaxConnections: slices.Max(clients) + 20,
		Settings: map[string]string{"shared_buffers": "256MB"}}, 20)
	if err != nil {
		return err
	}
	defer bench.Close()
	srv, dsn, bin, pb, tmp := bench.Server, bench.DSN, bench.Recorder, bench.Pgbench, bench.Dir
	psql := filepath.Join(srv.BinDir, "psql")
	if _, err := os.Stat(psql); err != nil {
		if psql, err = exec.LookPath("psql"); err != nil {
			return err
		}
	}
	runbook := strings.Join([]string{replay.SQLActivity, replay.SQLLocks, replay.SQLAccessExclusive, replay.SQLBlocking,
		replay.SQLVerifyWaiters, replay.SQLVerifyAccessExclusive}, "\n")

	// Warm the caches before the first measured run.
	if _, err := pb.Run(ctx, clients[0], 15*time.Second, "-S"); err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("machine: %d cores; load average before: %s", numCPU(), load)
	fmt.Printf("workload: pgbench -S (select-only: CPU-bound, the most sensitive to CPU taken by an observer), -j 2, %s per run, %d rounds\n\n", d, rounds)

	results := map[int]map[string]*cell{}
	var recCost []float64
	for _, c := range clients {
		results[c] = map[string]*cell{}
		for _, v := range variants {
			results[c][v] = &cell{}
		}
		for r := range rounds {
			// Rotate the order each round.
			order := append(slices.Clone(variants[r%len(variants):]), variants[:r%len(variants)]...)
			for _, v := range order {
				stopVariant, cost, err := startVariant(ctx, v, bin, psql, dsn, runbook, filepath.Join(tmp, fmt.Sprintf("rec-%d-%d-%s", c, r, v)))
				if err != nil {
					return err
				}
				res, err := pb.Run(ctx, c, d, "-S")
				stopVariant()
				if err != nil {
					return err
				}
				if v == "burst" {
					recCost = append(recCost, cost()...)
				}
				results[c][v].tps = append(results[c][v].tps, res.TPS)
				results[c][v].p99 = append(results[c][v].p99, res.P99)
				fmt.Printf("  %3d clients, round %d, %-8s %8.0f tps  p99 %6.1f ms\n", c, r+1, v, res.TPS, float64(res.P99.Microseconds())/1000)
			}
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average after: %s\n", load)
	fmt.Println("| clients | variant | TPS (mean of rounds) | TPS vs none | p99 latency |")
	fmt.Println("|---|---|---|---|---|")
	for _, c := range clients {
		base := mean(results[c]["none"].tps)
		for _, v := range variants {
			cl := results[c][v]
			fmt.Printf("| %d | %s | %.0f | %+.2f %% | %.1f ms |\n", c, label(v), mean(cl.tps), 100*(mean(cl.tps)/base-1), meanDur(cl.p99))
		}
	}

	// Server CPU per sample: the recorder's own measurement (its backend's
	// schedstat) against one run of the runbook's queries on a persistent
	// connection, measured the same way, while 200 clients run.
	rb, err := runbookCost(ctx, dsn, runbook, pb, clients[0])
	if err != nil {
		return err
	}
	fmt.Printf("\nserver CPU per sample under %d clients: recorder full sample %.2f ms (mean of %d); the runbook's queries %.2f ms per run (mean of %d); a psql -c run also pays a new backend's start-up\n",
		clients[0], mean(recCost)/1000, len(recCost), mean(rb)/1000, len(rb))
	return nil
}

func label(v string) string {
	switch v {
	case "none":
		return "no recorder"
	case "default":
		return "lockscope, default rates (probe 250 ms, full 5 s)"
	case "burst":
		return "lockscope, burst rate throughout (full sample every 250 ms)"
	case "runbook":
		return "the runbook's queries via psql, once a second"
	}
	return v
}

// startVariant starts what runs beside pgbench; stop ends it, and cost
// returns the recorder's server CPU per full sample (µs), when recorded.
func startVariant(ctx context.Context, v, bin, psql, dsn, runbook, out string) (stop func(), cost func() []float64, err error) {
	none := func() []float64 { return nil }
	switch v {
	case "none":
		return func() {}, none, nil
	case "default", "burst":
		args := []string{}
		if v == "burst" {
			args = []string{"--full-interval", "250ms"}
		}
		rec, err := reliability.StartRecorder(bin, dsn, out, append(args, "--log-level", "warn")...)
		if err != nil {
			return nil, nil, err
		}
		time.Sleep(500 * time.Millisecond)
		return func() { rec.Stop() }, func() []float64 { return fullCosts(out) }, nil
	case "runbook":
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				exec.CommandContext(cctx, psql, "-X", "-q", "-d", dsn, "-c", runbook).Run()
				select {
				case <-cctx.Done():
					return
				case <-t.C:
				}
			}
		}()
		return func() { cancel(); <-done }, none, nil
	}
	return nil, nil, fmt.Errorf("unknown variant %q", v)
}

func fullCosts(out string) []float64 {
	segs, err := recording.List(out)
	if err != nil {
		return nil
	}
	var c []float64
	for _, s := range segs {
		ticks, _, err := recording.ReadTable[recording.Tick](s.Files[recording.TableTicks])
		if err != nil {
			continue
		}
		for _, t := range ticks {
			if t.Kind == recording.TickFull && t.ServerMicros > 0 {
				c = append(c, float64(t.ServerMicros))
			}
		}
	}
	return c
}

// runbookCost runs the runbook's queries 20 times on one connection while
// pgbench runs, reading that backend's CPU time around each run.
func runbookCost(ctx context.Context, dsn, runbook string, pb reliability.Pgbench, clients int) ([]float64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); pb.Run(bctx, clients, 60*time.Second, "-S") }()
	defer func() { cancel(); <-done }()
	time.Sleep(3 * time.Second)
	var costs []float64
	for range 20 {
		before := schedNS(pid)
		if _, err := conn.PgConn().Exec(ctx, runbook).ReadAll(); err != nil {
			return nil, err
		}
		after := schedNS(pid)
		if before > 0 && after > before {
			costs = append(costs, float64(after-before)/1000)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return costs, nil
}

// schedNS reads a process's time on CPU (ns) from /proc/PID/schedstat.
func schedNS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func meanDur(v []time.Duration) float64 {
	var s float64
	for _, x := range v {
		s += float64(x.Microseconds()) / 1000
	}
	if len(v) == 0 {
		return 0
	}
	return s / float64(len(v))
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}
