package recording

import (
	"testing"
	"time"
)

func TestEventMessagesRoundTrip(t *testing.T) {
	g := GuardCancel{PID: 4242, App: `odoo "x" 1`, Waited: 2100 * time.Millisecond, Mode: "AccessExclusiveLock",
		Relation: "public.account_move", Behind: 7, Query: "ALTER TABLE account_move\nADD COLUMN x int"}
	got, ok := ParseGuardCancel(g.Message())
	if !ok || got != g {
		t.Errorf("ParseGuardCancel(%q) = %+v, %v; want %+v", g.Message(), got, ok, g)
	}
	if _, ok := ParseGuardCancel("something else"); ok {
		t.Error("ParseGuardCancel accepted a foreign message")
	}
	outcome, d, line, ok := ParseCommandEnd(CommandEndMessage("exited with status 3", 1500*time.Millisecond, "sh -c 'x after y s: z'"))
	if !ok || outcome != "exited with status 3" || d != 1500*time.Millisecond || line != "sh -c 'x after y s: z'" {
		t.Errorf("ParseCommandEnd: %q %v %q %v", outcome, d, line, ok)
	}
	pid, line, ok := ParseCommandStart(CommandStartMessage(77, "psql -f a.sql"))
	if !ok || pid != 77 || line != "psql -f a.sql" {
		t.Errorf("ParseCommandStart: %d %q %v", pid, line, ok)
	}
}
