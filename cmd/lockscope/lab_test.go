package main_test

import (
	"bufio"
	"bytes"
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
// DSN it prints, finds the root blocker with the runbook's blocking-graph
// query as a person would (the blocking pid that waits for no one), and
// cancels it. lab sees the queue drain and scores full marks.
func TestLabCommand(t *testing.T) {
	pgtest.SkipIfShort(t)
	scoreFile := filepath.Join(t.TempDir(), "score.json")
	cmd := exec.Command(bin, "lab", "report-vs-alter", "--time-limit", "90s", "--score-json", scoreFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(stdout, &out))
	dsnLine := regexp.MustCompile(`^\s+psql "(.+)"$`)
	var dsn string
	for sc.Scan() {
		if m := dsnLine.FindStringSubmatch(sc.Text()); m != nil {
			dsn = m[1]
			break
		}
	}
	if dsn == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no psql line in the brief:\n%s\n%s", out.String(), stderr.String())
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var root int32
	err = conn.QueryRow(ctx, `select distinct b.pid
		from pg_stat_activity w
		join pg_stat_activity b on b.pid = any(pg_blocking_pids(w.pid))
		where w.datname = current_database()
		  and cardinality(pg_blocking_pids(b.pid)) = 0`).Scan(&root)
	if err != nil {
		t.Fatalf("find the root blocker: %v", err)
	}
	time.Sleep(time.Second)
	if _, err := conn.Exec(ctx, "select pg_cancel_backend($1)", root); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	go io.Copy(&out, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lab: %v\n%s\n%s", err, out.String(), stderr.String())
	}
	for _, want := range []string{"Drill report-vs-alter: 100 of 100 points.", "cancelled pid "} {
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
}
