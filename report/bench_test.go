package report

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lockscope/lockscope/analyze"
)

// BenchmarkWrite renders the whole report (Markdown, blocking graph,
// timeline, queue chart) of a 500-session incident: the recorded
// cron-vs-alter incident with its queue widened to 500 waiters of three
// roles and modes.
func BenchmarkWrite(b *testing.B) {
	res, err := analyze.Run(context.Background(), analyze.Config{Dirs: []string{"../fixtures/cron-vs-alter/recording"}})
	if err != nil {
		b.Fatal(err)
	}
	inc := &res.Incidents[0]
	ddl := inc.DDL.PID
	roles := []string{analyze.RoleOdooHTTP, analyze.RoleOdooCron, analyze.RolePgBouncer}
	modes := []string{"AccessShareLock", "RowExclusiveLock", "RowShareLock"}
	for i := range 500 - len(inc.Waiters) {
		pid := int32(50000 + i)
		inc.Waiters = append(inc.Waiters, analyze.Session{PID: pid, BackendStart: inc.Start.Add(-time.Hour),
			ApplicationName: fmt.Sprintf("odoo-%d", i%64), Role: roles[i%3], State: "active", Mode: modes[i%3],
			Target: "stock_move", WaitedFor: float64(i%40) / 10, Query: "SELECT 1"})
		inc.EdgeLog = append(inc.EdgeLog, analyze.EdgeRecord{TS: inc.PeakAt, WaiterPID: pid, BlockerPID: ddl, Kind: analyze.EdgeSoftObserved, Observed: true})
	}
	inc.PeakWaiters = len(inc.Waiters)
	dir := b.TempDir()
	b.ResetTimer()
	for range b.N {
		if err := Write(context.Background(), dir, res); err != nil {
			b.Fatal(err)
		}
	}
}
