package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStart measures how long a command that renders nothing takes to
// start and end, with an empty cache (fresh HOME and TMPDIR), beside the
// lean recorder: the full binary links no WebAssembly renderer, so it
// should cost what lockscope-capture costs. Each op is 20 runs; ms/start
// is the mean. The cache directories
// must still be empty afterwards: nothing was compiled. (Peak RSS is not
// reported: a child forked from this process inherits its high-water mark
// in ru_maxrss. The README's figures come from GNU time.)
func BenchmarkStart(b *testing.B) {
	lockscope := bin(b)
	lean := filepath.Join(filepath.Dir(lockscope), "lockscope-capture")
	const runs = 20
	for _, c := range []struct {
		name string
		path string
		args []string
	}{
		{"lockscope --help", lockscope, []string{"--help"}},
		{"lockscope capture --help", lockscope, []string{"capture", "--help"}},
		{"lockscope-capture --help", lean, []string{"--help"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			home, tmp := b.TempDir(), b.TempDir()
			var total time.Duration
			for b.Loop() {
				for range runs {
					cmd := exec.Command(c.path, c.args...)
					cmd.Env = []string{"HOME=" + home, "TMPDIR=" + tmp}
					start := time.Now()
					if err := cmd.Run(); err != nil {
						b.Fatal(err)
					}
					total += time.Since(start)
				}
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N*runs), "ms/start")
			for _, d := range []string{home, tmp} {
				if entries, _ := os.ReadDir(d); len(entries) > 0 {
					b.Errorf("%s wrote %v into %s: something was compiled or cached", c.name, entries, d)
				}
			}
		})
	}
}
