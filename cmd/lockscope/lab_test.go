package main_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// lockscope lab end to end: a trainee reads the brief, connects with the
// DSN it prints, looks (Step 0), finds the root blocker with the runbook's
// blocking-graph query (the blocking pid that waits for no one) and cancels
// it; once lab asks for Step 3 the trainee runs the Step 4 checks and
// answers with the letter of finish-forward-with-guardrail. Full marks.
func TestLabCommand(t *testing.T) {
	pgtest.SkipIfShort(t)
	scoreFile := filepath.Join(t.TempDir(), "score.json")
	hist := filepath.Join(t.TempDir(), "history")
	cmd := exec.Command(bin(t), "lab", "long-report", "--seed", "5", "--time-limit", "90s", "--score-json", scoreFile, "--trainee", "dana", "--history", hist)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	lab := startLab(t, cmd)
	dsn, sc, stdout, out, stderr := lab.dsn, lab.lines, lab.stdout, &lab.out, &lab.stderr
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "select pid, state, wait_event_type, query from pg_stat_activity where datname = current_database()"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	var root int32
	err = conn.QueryRow(ctx, `select distinct b.pid
		from pg_stat_activity w
		join pg_stat_activity b on b.pid = any(pg_blocking_pids(w.pid))
		where w.datname = current_database()
		  and cardinality(pg_blocking_pids(b.pid)) = 0`).Scan(&root)
	if err != nil {
		t.Fatalf("find the root blocker: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := conn.Exec(ctx, "select pg_cancel_backend($1)", root); err != nil {
		t.Fatal(err)
	}
	// Wait for Step 3's question and find the letter of the right path.
	choice := regexp.MustCompile(`^  ([a-d])\) finish forward: let`)
	letter := ""
	for letter == "" && sc.Scan() {
		if m := choice.FindStringSubmatch(sc.Text()); m != nil {
			letter = m[1]
		}
	}
	if letter == "" {
		t.Fatalf("no Step 3 question:\n%s\n%s", out.String(), stderr.String())
	}
	for _, q := range []string{
		"select count(*) as lock_waiters from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
		"select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid where l.mode = 'AccessExclusiveLock' and not l.granted",
		"select name, state from ir_module_module where state in ('to install', 'to upgrade', 'to remove')"} {
		time.Sleep(300 * time.Millisecond)
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	io.WriteString(stdin, "x\n"+letter+"\n")
	go io.Copy(out, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lab: %v\n%s\n%s", err, out.String(), stderr.String())
	}
	for _, want := range []string{"Drill long-report (seed 5): 100 of 100 points.", `"x" is not one of the choices`, "server saw: pid ", "--seed 5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	var score struct {
		Contained bool
		Events    []struct{ PID int32 }
	}
	data, err := os.ReadFile(scoreFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &score); err != nil || !score.Contained || len(score.Events) != 1 || score.Events[0].PID != root {
		t.Errorf("score.json: %v %+v", err, score)
	}
	// The drill is in dana's history.
	var rec struct {
		Trainee, Kind, Drill string
		Seed                 uint64
		Points               int
	}
	line, err := os.ReadFile(filepath.Join(hist, "dana.jsonl"))
	if err != nil || json.Unmarshal(line, &rec) != nil || rec.Trainee != "dana" || rec.Kind != "lab" || rec.Drill != "long-report" || rec.Seed != 5 || rec.Points != 100 {
		t.Errorf("history: %v %s", err, line)
	}
}

// lab --help names what each scenario trains, never how it ends.
func TestLabHelpGivesNothingAway(t *testing.T) {
	out, err := exec.Command(bin(t), "lab", "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, give := range []string{"ended by", "terminat", "cancelling the", "commits", "negative control", "do nothing"} {
		i := strings.Index(string(out), "Scenarios (")
		if i < 0 {
			t.Fatalf("no scenario list:\n%s", out)
		}
		list := string(out)[i:]
		if j := strings.Index(list, "Exit status"); j > 0 {
			list = list[:j]
		}
		if strings.Contains(strings.ToLower(list), give) {
			t.Errorf("the scenario list says %q:\n%s", give, list)
		}
	}
	if !strings.Contains(string(out), "an idle transaction blocks a module upgrade") {
		t.Errorf("help lacks what idle-cron trains:\n%s", out)
	}
}
