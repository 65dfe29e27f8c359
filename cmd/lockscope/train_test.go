package main_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// lockscope train reads answers from stdin when it is not a terminal.
func TestTrainCommandLineMode(t *testing.T) {
	cmd := exec.Command(bin, "train", "../../fixtures/migration-holds-lock/recording")
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
