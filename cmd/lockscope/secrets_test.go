package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockscope/lockscope/fixtures/pgtest"
)

// descendants lists the pids of every process below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		data, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(data[bytes.LastIndexByte(data, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// A password given to lockscope through PGPASSWORD reaches no child
// process: not their command lines, not their environments (ps e).
// lab starts a throwaway server, whose processes are the children.
func TestPasswordNotInChildProcesses(t *testing.T) {
	pgtest.SkipIfShort(t)
	const secret = "s3cret-Pa55word-lockscope"
	cmd := exec.Command(bin(t), "lab", "--time-limit", "4s")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+secret)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	seen := map[int]bool{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("lab: %v\n%s", err, out.String())
			}
			running = false
		case <-tick.C:
			for _, p := range descendants(cmd.Process.Pid) {
				// A child not yet past exec still shares lockscope's
				// memory, and so shows its environment: only what it
				// runs counts.
				if exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p), "exe")); err == nil && exe == bin(t) {
					continue
				}
				for _, f := range []string{"cmdline", "environ"} {
					data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), f))
					if err != nil {
						continue
					}
					seen[p] = true
					if bytes.Contains(data, []byte(secret)) {
						t.Errorf("child %d (%s) has the password in its %s", p, procName(p), f)
					}
				}
			}
		}
	}
	if len(seen) == 0 {
		t.Error("no child process was seen: the test looked at nothing")
	}
	if strings.Contains(out.String(), secret) {
		t.Error("the password is in lab's output")
	}
}

func procName(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}
