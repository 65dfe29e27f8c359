package analyze_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// FuzzReadTable: whatever bytes stand in for a table file, reading it
// gives rows or an error naming the file — never a panic. The seeds are
// real table files of a recorded fixture, whole, cut short and with a byte
// flipped; the corpus lives in testdata/fuzz/FuzzReadTable.
func FuzzReadTable(f *testing.F) {
	var patterns []string
	for _, table := range []string{recording.TableLocks, recording.TableActivity} {
		patterns = append(patterns, filepath.Join("..", "fixtures", "cron-vs-alter", "recording", table, "*", "*", "*.parquet"))
	}
	pgtest.AddDamagedSeeds(f, patterns...)
	f.Add([]byte("PAR1PAR1"), uint32(0), byte(0))
	f.Fuzz(func(t *testing.T, content []byte, at uint32, flip byte) {
		path := pgtest.WriteDamaged(t, content, at, flip)
		// Never an allocation sized by what a damaged file claims: a
		// bound proportional to the file, as a real one needs.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		defer func() {
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 256<<20+uint64(len(content))*256 {
				t.Errorf("reading a %d-byte file allocated %d MiB", len(content), n>>20)
			}
		}()
		analyze.ReadTableFile(context.Background(), memory.NewGoAllocator(), path, 1<<20)
	})
}
