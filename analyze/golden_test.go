package analyze_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lockscope/lockscope/analyze"
)

var update = flag.Bool("update", false, "rewrite testdata/*.incident.json from the recorded fixtures")

// fixtureJSON analyses one recorded fixture and returns its incident.json.
func fixtureJSON(t *testing.T, name string) []byte {
	t.Helper()
	res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{filepath.Join("..", "fixtures", name, "recording")}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func fixtureNames(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("../fixtures/*/truth.json")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no recorded fixtures: %v", err)
	}
	var names []string
	for _, d := range dirs {
		names = append(names, filepath.Base(filepath.Dir(d)))
	}
	return names
}

// Each recorded fixture's incident.json is golden: a change to the output
// shows in review as a diff (go test ./analyze -update rewrites them).
func TestIncidentJSONGolden(t *testing.T) {
	for _, name := range fixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			got := fixtureJSON(t, name)
			golden := filepath.Join("testdata", name+".incident.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./analyze -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("incident.json (-want +got):\n%s", diff)
			}
		})
	}
}

// Every field incident.json holds is documented in SCHEMA.md, so the
// contract and the output cannot drift apart silently.
func TestSchemaDocumentsEveryField(t *testing.T) {
	doc, err := os.ReadFile("SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				keys[k] = true
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, name := range fixtureNames(t) {
		var v any
		if err := json.Unmarshal(fixtureJSON(t, name), &v); err != nil {
			t.Fatal(err)
		}
		walk(v)
	}
	// The names SCHEMA.md documents: every identifier inside its code
	// spans (`a`, `{a, b}`, `a[]`).
	documented := map[string]bool{}
	for i, span := range strings.Split(string(doc), "`") {
		if i%2 == 1 {
			for _, w := range strings.FieldsFunc(span, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
				documented[w] = true
			}
		}
	}
	var missing []string
	for k := range keys {
		if strings.Trim(k, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			continue // a data key (an application name, an edge kind), not a field
		}
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("incident.json fields not in SCHEMA.md: %v", missing)
	}
}
