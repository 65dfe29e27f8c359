package main_test

import (
	"strings"
	"testing"
)

// lockscope replay on a committed recording: one block per moment of the
// walk, the runbook's tables, and one-line errors for bad input.
func TestReplayCommand(t *testing.T) {
	rec := "../../fixtures/cron-vs-alter/recording"
	out, stderr, code := run(t, "replay", rec, "--at", "T+1s", "--step", "1s", "--until", "T+3s", "--view", "blocking,verify")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(out, "\n== "); n+boolInt(strings.HasPrefix(out, "== ")) != 3 {
		t.Errorf("want 3 moments (T+1s, T+2s, T+3s), got:\n%s", out)
	}
	for _, want := range []string{"T+1.0s of incident 1", "T+3.0s of incident 1", " waiting_pid | waiting_app |", " lock_waiters ", "(1 row)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "captured_at") {
		t.Error("--view blocking,verify printed the activity view")
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay", rec, "--view", "nope"}, 2, `--view "nope": pick one of activity`},
		{[]string{"replay", rec, "--at", "yesterday"}, 2, `time "yesterday": want start, peak, end`},
		{[]string{"replay", rec, "--at", "2001-01-01T00:00:00Z"}, 1, "before the recording's first sample"},
		{[]string{"replay", rec, "--incident", "7", "--at", "peak"}, 1, "has 1 incident(s), not 7"},
		{[]string{"replay", t.TempDir(), "--at", "peak"}, 1, "no samples"},
	} {
		_, stderr, code := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
