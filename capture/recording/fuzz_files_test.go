package recording_test

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// FuzzReadTableFile: the parquet-go path that lists recordings and reads
// table files (recording.List, OpenTableFile, ReadTable) answers any bytes
// with rows or an error naming the file, never a panic; opening a file
// allocates no more than its size justifies, whatever its footer claims.
// Seeds are table files of a committed fixture, whole, cut short and
// flipped.
func FuzzReadTableFile(f *testing.F) {
	var patterns []string
	for _, table := range []string{recording.TableLocks, recording.TableActivity, recording.TableTicks} {
		patterns = append(patterns, filepath.Join("..", "..", "fixtures", "chain", "recording", table, "*", "*", "*.parquet"))
	}
	pgtest.AddDamagedSeeds(f, patterns...)
	f.Fuzz(func(t *testing.T, content []byte, at uint32, flip byte) {
		path := pgtest.WriteDamaged(t, content, at, flip)
		// Listing a recording opens every table file's footer: that path
		// allocates no more than the file justifies.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if tf, err := recording.OpenTableFile(path); err == nil {
			tf.Close()
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("error does not name the file: %v", err)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20+uint64(len(content))*64 {
			t.Errorf("opening a %d-byte file allocated %d MiB", len(content), n>>20)
		}
		// ReadTable reads pages at the sizes their headers claim (it serves
		// tests and tools on the project's own recordings; the commands
		// read with analyze's bounded reader): it must not panic.
		for _, read := range []func(string) error{
			func(p string) error { _, _, err := recording.ReadTable[recording.Lock](p); return err },
			func(p string) error { _, _, err := recording.ReadTable[recording.Activity](p); return err },
			func(p string) error { _, _, err := recording.ReadTable[recording.Tick](p); return err },
		} {
			if err := read(path); err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file: %v", err)
			}
		}
	})
}
