package analyze

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/lockscope/lockscope/capture/recording"
)

// Importing analyze leaves Arrow's zstd codec alone; reading a recording
// bounds it. The check runs in a fresh process, where nothing was read yet.
func TestZstdBoundOnlyWhenReading(t *testing.T) {
	if os.Getenv("LOCKSCOPE_CODEC_PROBE") == "" {
		cmd := exec.Command(os.Args[0], "-test.short", "-test.count=1", "-test.run=^TestZstdBoundOnlyWhenReading$")
		cmd.Env = append(os.Environ(), "LOCKSCOPE_CODEC_PROBE=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("fresh process: %v\n%s", err, out)
		}
		return
	}
	c, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(boundedZstd); ok {
		t.Fatal("importing analyze replaced Arrow's zstd codec before anything was read")
	}
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "cron-vs-alter", "recording", recording.TableEdges, "*", "*", "*.parquet"))
	if len(files) == 0 {
		t.Fatal("no fixture recording")
	}
	if err := readAll(context.Background(), memory.NewGoAllocator(), files[0], convEdge, func(*recording.Edge) {}); err != nil {
		t.Fatal(err)
	}
	if c, _ := compress.GetCodec(compress.Codecs.Zstd); c == nil {
		t.Fatal("no zstd codec")
	} else if _, ok := c.(boundedZstd); !ok {
		t.Fatalf("after reading a recording Arrow's zstd codec is %T, want the bounded one", c)
	}
}
