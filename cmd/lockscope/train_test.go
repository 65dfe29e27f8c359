package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// lockscope train reads answers from stdin when it is not a terminal.
func TestTrainCommandLineMode(t *testing.T) {
	cmd := exec.Command(bin(t), "train", "../../fixtures/migration-holds-lock/recording")
	cmd.Stdin = strings.NewReader("blocking\na\nquit\n")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, e.String())
	}
	for _, want := range []string{"Training on incident 1", "Question 1 of ", " waiting_pid |", "Score: ", "What happened: "} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, o.String())
		}
	}
	_, stderr, code := run(t, "train", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "no samples") {
		t.Errorf("empty directory: exit %d, %q", code, stderr)
	}
}

// A trainer's loop from the command line: a drill recorded in a trainee's
// history, then the progress against a curriculum.
func TestTrainHistoryCommand(t *testing.T) {
	dir := t.TempDir()
	hist := filepath.Join(dir, "history")
	cmd := exec.Command(bin(t), "train", "../../fixtures/chain/recording", "--lines", "--trainee", "alice", "--history", hist)
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cur := filepath.Join(dir, "curriculum.json")
	rec, _ := filepath.Abs("../../fixtures/chain/recording")
	os.WriteFile(cur, []byte(`{"drills": [{"recording": "`+rec+`", "pass": 80}, {"lab": "backup-root", "pass": 90}]}`), 0o600)
	out, err := exec.Command(bin(t), "train", "--history", hist, "--curriculum", cur).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"alice: 1 drill(s)", "1 attempt(s), best   0, last   0 (pass 80: not yet passed)", "next: recording " + rec} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, args := range [][]string{{"train", "--trainee", "alice", "x"}, {"train", "--history", hist, "--trainee", "a b", "x"}, {"train"}} {
		_, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, "lockscope: ") {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}
