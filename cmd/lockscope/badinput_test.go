package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// copyRecording copies a committed fixture's recording to a temporary
// directory the test may damage.
func copyRecording(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", "-a", filepath.Join("..", "..", "fixtures", name, "recording"), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v: %s", err, out)
	}
	return dst
}

func tableFile(t *testing.T, dir, table string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, table, "cluster=*", "date=*", "*.parquet"))
	if len(files) == 0 {
		t.Fatalf("no %s file in %s", table, dir)
	}
	return files[0]
}

// writeParquet writes rows with the given key-value metadata.
func writeParquet[T any](t *testing.T, path string, rows []T, kv map[string]string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o700)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var opts []parquet.WriterOption
	for k, v := range kv {
		opts = append(opts, parquet.KeyValueMetadata(k, v))
	}
	w := parquet.NewGenericWriter[T](f, opts...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// Broken and foreign recordings: analyze, replay and train each print one
// line naming the file and what is wrong, exit 1, and never panic.
func TestBrokenRecordings(t *testing.T) {
	seg := "20261124T090000.000000Z.parquet"

	foreign := t.TempDir()
	type other struct {
		A int64  `parquet:"a"`
		B string `parquet:"b"`
	}
	writeParquet(t, filepath.Join(foreign, "ticks", "cluster=x", "date=2026-11-24", seg), []other{{1, "x"}}, nil)

	newer := t.TempDir()
	writeParquet(t, filepath.Join(newer, "ticks", "cluster=x", "date=2026-11-24", seg), []recording.Tick{{SampleID: 1, TS: 1, Kind: "full"}},
		map[string]string{recording.KeySchemaVersion: "99", recording.KeyTable: "ticks", recording.KeyMeta: "{}"})

	truncated := copyRecording(t, "chain")
	locks := tableFile(t, truncated, recording.TableLocks)
	fi, _ := os.Stat(locks)
	if err := os.Truncate(locks, fi.Size()/2); err != nil {
		t.Fatal(err)
	}

	flipped := copyRecording(t, "row-contention")
	act := tableFile(t, flipped, recording.TableActivity)
	data, _ := os.ReadFile(act)
	for i := len(data) / 3; i < len(data)/3+64 && i < len(data); i++ {
		data[i] ^= 0xa5
	}
	os.WriteFile(act, data, 0o600)

	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, []byte("x"), 0o600)

	cases := []struct {
		name, dir string
		want      []string
	}{
		{"a Parquet file from another tool", foreign, []string{"no lockscope.schema_version metadata", seg}},
		{"a newer schema version", newer, []string{`schema version "99"`, "upgrade lockscope", seg}},
		{"a truncated table file", truncated, []string{filepath.Base(locks)}},
		{"flipped bytes in a table file", flipped, []string{filepath.Base(act)}},
		{"a file, not a directory", notDir, []string{"not a directory"}},
	}
	for _, c := range cases {
		for _, cmd := range [][]string{{"analyze", c.dir}, {"replay", c.dir, "--at", "peak"}, {"train", c.dir, "--lines"}} {
			t.Run(c.name+"/"+cmd[0], func(t *testing.T) {
				_, stderr, code := run(t, cmd...)
				lines := strings.Split(strings.TrimSpace(stderr), "\n")
				if code != 1 || len(lines) != 1 || strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
					t.Fatalf("exit %d, stderr:\n%s", code, stderr)
				}
				for _, w := range c.want {
					if !strings.Contains(lines[0], w) {
						t.Errorf("%q lacks %q", lines[0], w)
					}
				}
			})
		}
	}
}

// Recordings of two clusters given together: analyze says which clusters
// it found and how to pick one.
func TestMixedClusters(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "other")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cfg := capture.DefaultConfig()
	cfg.DSN, cfg.Out, cfg.Cluster = srv.DSN("postgres"), out, "staging"
	cfg.FullInterval, cfg.ProbeInterval = 200*time.Millisecond, 100*time.Millisecond
	if err := capture.Run(ctx, cfg); err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "analyze", "../../fixtures/cron-vs-alter/recording", out)
	if code != 1 || !strings.Contains(stderr, "fixture") || !strings.Contains(stderr, "staging") || !strings.Contains(stderr, "--cluster") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	stdout, stderr, code := run(t, "analyze", "../../fixtures/cron-vs-alter/recording", out, "--cluster", "fixture")
	if code != 0 || !strings.Contains(stdout, "incident 1") {
		t.Errorf("--cluster fixture: exit %d: %s", code, stderr)
	}
}
