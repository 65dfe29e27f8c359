package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lockscope/lockscope/analyze"
)

// A root blocker's line says both how old its transaction was when it was
// first seen blocking and how long it blocked: a young transaction can
// block for long.
func TestSummaryRootBlockerAgeAndBlocked(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	gone := t0.Add(4 * time.Second)
	res := &analyze.Result{Incidents: []analyze.Incident{{ID: 1, Kind: "ddl_lock_queue", Start: t0, PeakAt: t0,
		RootBlockers: []analyze.RootBlocker{{Session: analyze.Session{PID: 42, ApplicationName: "cron", State: "idle in transaction"},
			TransactionAge: 0.1, FirstSeen: t0, LastSeen: t0.Add(3900 * time.Millisecond), Gone: &gone, WaiterSeconds: 12}},
	}}}
	var b strings.Builder
	summarize(&b, res)
	if want := "transaction 0.1 s old when first seen blocking, blocked 4.0 s"; !strings.Contains(b.String(), want) {
		t.Errorf("summary:\n%s\nwant %q", b.String(), want)
	}
}
