// Command soak leaves the recorder running for a long while (30 minutes by
// default) with small rotation and retention limits, under a steady
// pgbench workload and a staged incident every few minutes, and checks
// what a production user relies on: disk use stays under the retention
// budget, incident segments are kept over quiet ones, and the recorder's
// memory does not grow. It prints its measurements and exits 1 when a
// check fails.
//
//	go run ./reliability/soak [-duration 30m] [-every 4m]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
	"github.com/lockscope/lockscope/reliability"
)

func main() {
	duration := flag.Duration("duration", 30*time.Minute, "how long the recorder runs")
	every := flag.Duration("every", 4*time.Minute, "stage an incident this often")
	budget := flag.Int64("retain-bytes", 3<<19, "the recorder's --retain-size, in bytes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *duration, *every, *budget); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type sample struct {
	at    time.Duration
	rss   int
	bytes int64
	segs  int
}

func run(ctx context.Context, duration, every time.Duration, budget int64) error {
	bench, err := reliability.NewBench(ctx, "odoo", pgtest.Options{MaxConnections: 200}, 5)
	if err != nil {
		return err
	}
	defer bench.Close()
	tmp, bin, dsn, pb := bench.Dir, bench.Recorder, bench.DSN, bench.Pgbench
	if err := scenario.LoadSchema(ctx, dsn); err != nil {
		return err
	}
	out := filepath.Join(tmp, "rec")
	const segSize = 1 << 20
	rec, err := reliability.StartRecorder(bin, dsn, out, "--segment-duration", "1m", "--segment-size", fmt.Sprint(segSize),
		"--retain-size", fmt.Sprint(budget), "--log-level", "warn")
	if err != nil {
		return err
	}
	defer rec.Stop()

	// A steady, rate-limited background workload for the whole run.
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	go func() {
		for wctx.Err() == nil {
			pb.Run(wctx, 20, time.Minute, "-R", "200")
		}
	}()

	start := time.Now()
	var samples []sample
	var staged []time.Time
	var peak int64
	next := start.Add(30 * time.Second)
	n := 0
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for time.Since(start) < duration {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if !rec.Running() {
			return fmt.Errorf("the recorder stopped: %s", rec.Stderr())
		}
		s := sample{at: time.Since(start), rss: rec.RSSKiB(), bytes: reliability.DirBytes(out)}
		if segs, err := recording.List(out); err == nil {
			s.segs = len(segs)
		}
		peak = max(peak, s.bytes)
		samples = append(samples, s)
		if time.Now().After(next) {
			sc := scenario.Scenarios[n%len(scenario.Scenarios)]
			n++
			next = next.Add(every)
			at := time.Now()
			inc, err := sc.Stage(ctx, dsn, scenario.Options{Workers: 20, AppPrefix: "soak"})
			if err != nil {
				return fmt.Errorf("stage %s: %w", sc.Name, err)
			}
			time.Sleep(20 * time.Second)
			err = inc.End(ctx)
			inc.Close()
			if err != nil {
				return fmt.Errorf("end %s: %w", sc.Name, err)
			}
			staged = append(staged, at)
			fmt.Printf("%6.0fs  staged %s\n", time.Since(start).Seconds(), sc.Name)
		}
		if len(samples)%6 == 0 {
			fmt.Printf("%6.0fs  rss %d KiB  disk %.2f MiB  sealed segments %d\n", s.at.Seconds(), s.rss, float64(s.bytes)/(1<<20), s.segs)
		}
	}
	stopWork()
	if code := rec.Stop(); code != 0 {
		return fmt.Errorf("the recorder exited %d: %s", code, rec.Stderr())
	}
	check, err := reliability.CheckRecording(out)
	if err != nil {
		return err
	}
	segs, err := recording.List(out)
	if err != nil {
		return err
	}
	incidentSegs, quietSegs := 0, 0
	for _, s := range segs {
		if s.Meta.LockWaitTicks > 0 {
			incidentSegs++
		} else {
			quietSegs++
		}
	}
	// Which staged incidents are still in the recording.
	kept := 0
	for _, at := range staged {
		if slices.ContainsFunc(segs, func(s recording.Segment) bool {
			return s.Meta.StartUS <= at.Add(5*time.Second).UnixMicro() && s.Meta.EndUS >= at.Add(5*time.Second).UnixMicro() && s.Meta.LockWaitTicks > 0
		}) {
			kept++
		}
	}
	first, last := window(samples, 0, 5*time.Minute), window(samples, duration-5*time.Minute, duration)
	fmt.Printf("\nran %s: %d incidents staged, %d still in the recording; %d segments kept (%d with incidents, %d quiet)\n",
		duration, len(staged), kept, len(segs), incidentSegs, quietSegs)
	fmt.Printf("disk: peak %.2f MiB against a %.2f MiB retention budget (+ one open segment of at most %.2f MiB)\n",
		float64(peak)/(1<<20), float64(budget)/(1<<20), float64(segSize)/(1<<20))
	fmt.Printf("memory: RSS %d KiB over the first 5 minutes, %d KiB over the last 5 (mean)\n", first, last)
	fmt.Printf("recording: %d files read back, %d invalid\n", check.Files, len(check.Invalid))
	var failures []string
	if peak > budget+2*segSize {
		failures = append(failures, fmt.Sprintf("disk use peaked at %d bytes, over the budget %d + 2 segments", peak, budget))
	}
	if len(check.Invalid) > 0 {
		failures = append(failures, fmt.Sprintf("invalid files: %v", check.Invalid))
	}
	if quietSegs > 1 && incidentSegs < min(len(staged), 2) {
		failures = append(failures, "quiet segments were kept while incident segments went")
	}
	if last > first*5/4+2048 {
		failures = append(failures, fmt.Sprintf("RSS grew from %d to %d KiB", first, last))
	}
	if len(failures) > 0 {
		return fmt.Errorf("%v", failures)
	}
	fmt.Println("all checks passed")
	return nil
}

// window is the mean RSS of the samples in [from, to).
func window(s []sample, from, to time.Duration) int {
	var sum, n int
	for _, x := range s {
		if x.at >= from && x.at < to && x.rss > 0 {
			sum += x.rss
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}
