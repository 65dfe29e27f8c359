package analyze

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lockscope/lockscope/capture/recording"
)

// FuzzReadTable: whatever bytes stand in for a table file, reading it
// gives rows or an error naming the file — never a panic. The seeds are
// real table files of a recorded fixture, whole, cut short and with a byte
// flipped; the corpus lives in testdata/fuzz/FuzzReadTable.
func FuzzReadTable(f *testing.F) {
	for _, table := range []string{recording.TableLocks, recording.TableActivity} {
		files, _ := filepath.Glob(filepath.Join("..", "fixtures", "cron-vs-alter", "recording", table, "*", "*", "*.parquet"))
		for _, p := range files {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, uint32(0), byte(0))
			f.Add(data[:len(data)*2/3], uint32(0), byte(0))
			f.Add(data, uint32(len(data)/2), byte(0x5a))
			f.Add(data, uint32(len(data)-12), byte(0xff))
		}
	}
	f.Add([]byte("PAR1PAR1"), uint32(0), byte(0))
	f.Fuzz(func(t *testing.T, content []byte, at uint32, flip byte) {
		b := append([]byte(nil), content...)
		if int(at) < len(b) {
			b[at] ^= flip
		}
		path := filepath.Join(t.TempDir(), "t.parquet")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// Never an allocation sized by what a damaged file claims: a
		// bound proportional to the file, as a real one needs.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		defer func() {
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 256<<20+uint64(len(b))*256 {
				t.Errorf("reading a %d-byte file allocated %d MiB", len(b), n>>20)
			}
		}()
		mem := memory.NewGoAllocator()
		c1 := newCursor(context.Background(), mem, []string{path}, convLock)
		var l recording.Lock
		for n := 0; c1.peek(&l) && n < 1<<20; n++ {
			c1.skip()
		}
		c1.close()
		c2 := newCursor(context.Background(), mem, []string{path}, convActivity)
		var a recording.Activity
		for n := 0; c2.peek(&a) && n < 1<<20; n++ {
			c2.skip()
		}
		c2.close()
	})
}
