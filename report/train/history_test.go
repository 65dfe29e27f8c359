package train_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockscope/lockscope/report/train"
)

// A trainer's loop: drills appended to each trainee's history, a
// curriculum with pass marks, the summary and the next drill due.
func TestHistoryAndCurriculum(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "history")
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i, r := range []train.Record{
		{Trainee: "alice", Kind: train.DrillLab, Drill: "idle-cron", Seed: 7, Points: 55, Missed: []string{"Step 0/1: looked before acting"}},
		{Trainee: "alice", Kind: train.DrillLab, Drill: "idle-cron", Seed: 8, Points: 92},
		{Trainee: "bob", Kind: train.DrillLab, Drill: "idle-cron", Seed: 9, Points: 30, Missed: []string{"Step 2: harm", "Step 0/1: looked before acting"}},
		{Trainee: "alice", Kind: train.DrillRecording, Drill: "rec/chain", Points: 60},
	} {
		r.At = t0.Add(time.Duration(i) * time.Hour)
		if err := train.AppendHistory(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "alice.jsonl"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("alice.jsonl: %v %v, want 0600", err, fi)
	}
	if err := train.AppendHistory(dir, train.Record{Trainee: "../evil"}); err == nil {
		t.Error("a trainee name with a path was accepted")
	}
	cur := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(cur, []byte(`{"drills": [{"lab": "idle-cron", "pass": 80}, {"recording": "`+filepath.Join(mustAbs(t, "rec/chain"))+`", "pass": 80}, {"lab": "backup-root", "pass": 90}]}`), 0o600)
	c, err := train.LoadCurriculum(cur)
	if err != nil {
		t.Fatal(err)
	}
	records, err := train.LoadHistory(dir)
	if err != nil || len(records) != 4 {
		t.Fatalf("%d records: %v", len(records), err)
	}
	if next, ok := c.Next(records, "alice"); !ok || next.Recording == "" {
		t.Errorf("alice's next drill: %+v %v, want the recording (idle-cron passed, the recording at 60 of 80)", next, ok)
	}
	if next, _ := c.Next(records, "bob"); next.Lab != "idle-cron" {
		t.Errorf("bob's next drill: %+v", next)
	}
	var b strings.Builder
	if err := train.Summarize(&b, records, c); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"alice: 3 drill(s)", "lab idle-cron", "2 attempt(s), best  92, last  92 (pass 80: passed)",
		"1 attempt(s), best  60, last  60 (pass 80: not yet passed)", "lab backup-root                          not taken",
		"bob: 1 drill(s)", "points lost most often on: Step 0/1: looked before acting (1), Step 2: harm (1)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	for name, text := range map[string]string{
		"empty":   `{"drills": []}`,
		"both":    `{"drills": [{"lab": "idle-cron", "recording": "x", "pass": 80}]}`,
		"pass":    `{"drills": [{"lab": "idle-cron", "pass": 0}]}`,
		"unknown": `{"drills": [{"lab": "idle-cron", "pass": 80, "passmark": 3}]}`,
		"json":    `drills: idle-cron`,
	} {
		p := filepath.Join(t.TempDir(), name+".json")
		os.WriteFile(p, []byte(text), 0o600)
		if _, err := train.LoadCurriculum(p); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line error", name, err)
		}
	}
	os.WriteFile(filepath.Join(dir, "carol.jsonl"), []byte("{not json\n"), 0o600)
	if _, err := train.LoadHistory(dir); err == nil || !strings.Contains(err.Error(), "carol.jsonl line 1") {
		t.Errorf("a damaged history: %v", err)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
