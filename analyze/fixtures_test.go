package analyze_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

// The committed fixtures are real recordings of staged incidents; analyzing
// them needs no database, so this runs under -short too. Each is checked
// against the truth written when it was staged.
func TestAnalyzeRecordedFixtures(t *testing.T) {
	dirs, err := filepath.Glob("../fixtures/*/truth.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < len(scenario.Scenarios) {
		t.Fatalf("found %d recorded fixtures, want one per scenario (%d): run make fixtures", len(dirs), len(scenario.Scenarios))
	}
	for _, truthFile := range dirs {
		dir := filepath.Dir(truthFile)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(truthFile)
			if err != nil {
				t.Fatal(err)
			}
			var truth scenario.Truth
			if err := json.Unmarshal(data, &truth); err != nil {
				t.Fatal(err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{filepath.Join(dir, "recording")}, Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			mem.AssertSize(t, 0)
			checkIncident(t, truth, res)
		})
	}
}
