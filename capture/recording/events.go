package recording

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// GuardCancel is what a guard_cancel event says: the lock waiter the
// guard cancelled, what it waited for and how long, and how many sessions
// were queued behind it. Message and ParseGuardCancel are the event's
// text format, written by capture and read by analyze.
type GuardCancel struct {
	PID      int32
	App      string
	Waited   time.Duration
	Mode     string
	Relation string
	Behind   int
	Query    string
}

// Message is the text of the guard_cancel event.
func (g GuardCancel) Message() string {
	return fmt.Sprintf("cancelled pid %d (application %q) after waiting %.1f s for %s on %s with %d sessions queued behind it: %s",
		g.PID, g.App, g.Waited.Seconds(), g.Mode, g.Relation, g.Behind, g.Query)
}

var guardCancelRE = regexp.MustCompile(`^cancelled pid (\d+) \(application ("(?:[^"\\]|\\.)*")\) after waiting ([0-9.]+) s for (\S+) on (.+?) with (\d+) sessions queued behind it: (?s:(.*))$`)

// ParseGuardCancel reads a guard_cancel event's message.
func ParseGuardCancel(msg string) (GuardCancel, bool) {
	m := guardCancelRE.FindStringSubmatch(msg)
	if m == nil {
		return GuardCancel{}, false
	}
	pid, err1 := strconv.ParseInt(m[1], 10, 32)
	app, err2 := strconv.Unquote(m[2])
	waited, err3 := strconv.ParseFloat(m[3], 64)
	behind, err4 := strconv.Atoi(m[6])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return GuardCancel{}, false
	}
	return GuardCancel{PID: int32(pid), App: app, Waited: time.Duration(waited * float64(time.Second)), Mode: m[4],
		Relation: m[5], Behind: behind, Query: m[7]}, true
}

// CommandStartMessage is the text of a command_start event.
func CommandStartMessage(pid int, commandLine string) string {
	return fmt.Sprintf("pid %d: %s", pid, commandLine)
}

// CommandEndMessage is the text of a command_end event; outcome is
// "exited with status N" or "killed by signal N (name)".
func CommandEndMessage(outcome string, d time.Duration, commandLine string) string {
	return fmt.Sprintf("%s after %.3f s: %s", outcome, d.Seconds(), commandLine)
}

// ParseCommandEnd reads a command_end event's message.
func ParseCommandEnd(msg string) (outcome string, d time.Duration, commandLine string, ok bool) {
	outcome, rest, ok := strings.Cut(msg, " after ")
	if !ok {
		return "", 0, "", false
	}
	secs, line, ok := strings.Cut(rest, " s: ")
	if !ok {
		return "", 0, "", false
	}
	f, err := strconv.ParseFloat(secs, 64)
	if err != nil {
		return "", 0, "", false
	}
	return outcome, time.Duration(f * float64(time.Second)), line, true
}

// ParseCommandStart reads a command_start event's message.
func ParseCommandStart(msg string) (pid int, commandLine string, ok bool) {
	p, line, ok := strings.Cut(msg, ": ")
	if !ok || !strings.HasPrefix(p, "pid ") {
		return 0, "", false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p, "pid "))
	if err != nil {
		return 0, "", false
	}
	return n, line, true
}
