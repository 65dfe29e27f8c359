package replay_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
	"github.com/lockscope/lockscope/report/replay"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, &srv, pgtest.Options{}))
}

// live runs one view's runbook query on the server, in text format as
// psql receives it, one Table per statement.
func live(ctx context.Context, t *testing.T, conn *pgx.Conn, sql string) []replay.Table {
	t.Helper()
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("runbook query: %v\n%s", err, sql)
	}
	var out []replay.Table
	for _, r := range results {
		var tb replay.Table
		for _, fd := range r.FieldDescriptions {
			tb.Columns = append(tb.Columns, fd.Name)
		}
		for _, row := range r.Rows {
			vals := make([]*string, len(row))
			for i, v := range row {
				if v != nil {
					s := string(v)
					vals[i] = &s
				}
			}
			tb.Rows = append(tb.Rows, vals)
		}
		out = append(out, tb)
	}
	return out
}

// rows projects a table onto the named columns, keeping the rows whose
// pid column (the first named) is one of the staged sessions'.
func rows(tb replay.Table, pids map[string]bool, cols ...string) [][]string {
	var out [][]string
	for r := range tb.Rows {
		if pids != nil && !pids[tb.Get(r, cols[0])] {
			continue
		}
		var row []string
		for _, c := range cols {
			row = append(row, tb.Get(r, c))
		}
		out = append(out, row)
	}
	return out
}

func sorted(rs [][]string) [][]string {
	slices.SortFunc(rs, func(a, b []string) int { return strings.Compare(strings.Join(a, "\x00"), strings.Join(b, "\x00")) })
	return rs
}

// The replayed views must show what the runbook's queries showed live: the
// queries run on the staged server while the incident stands, and the
// recorder's next sample is replayed beside them.
func TestReplayMatchesLiveRunbookQueries(t *testing.T) {
	cases := []pgtest.Staged{
		{Scenario: "cron-vs-alter", Options: scenario.Options{Table: "account_move", Workers: 5, AppPrefix: "erp"}},
		{Scenario: "chain", Options: scenario.Options{Table: "sale_order_line", Workers: 4, AppPrefix: "odoo"}},
		{Scenario: "create-index-pgdump", Options: scenario.Options{Table: "ir_attachment", Workers: 3, AppPrefix: "web"}},
		{Scenario: "row-contention", Options: scenario.Options{Table: "stock_quant", Workers: 3, AppPrefix: "pos"}},
		{Scenario: "prepared-root", Options: scenario.Options{Table: "sale_order", Workers: 3, AppPrefix: "odoo"}},
	}
	pgtest.RunStaged(t, cases, func(t *testing.T, c pgtest.Staged) {
		ctx := context.Background()
		db := pgtest.NewDatabase(t, srv)
		if err := scenario.LoadSchema(ctx, db); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		// A module left mid-upgrade, for the Step 4 check.
		if _, err := conn.Exec(ctx, "UPDATE ir_module_module SET state = 'to upgrade' WHERE name = 'stock'"); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "rec")
		var observed time.Time
		var staged map[string]bool
		liveViews := map[string][]replay.Table{}
		capt := pgtest.FastCapture(out)
		capt.OdooInterval = 200 * time.Millisecond
		_, err = scenario.RecordIncident(ctx, scenario.RecordOptions{
			DSN: db, Scenario: c.Scenario, Stage: c.Options, Hold: time.Second, Capture: capt,
			Observe: func(ctx context.Context, inc *scenario.Incident) error {
				staged = map[string]bool{}
				for _, p := range inc.PIDs() {
					staged[fmt.Sprint(p)] = true
				}
				for _, v := range replay.Views {
					liveViews[v.Name] = live(ctx, t, conn, v.SQL)
				}
				observed = time.Now()
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		// The first full sample after the live queries.
		var frame *analyze.Frame
		err = analyze.Frames(ctx, analyze.Config{Dirs: []string{out}}, func(f *analyze.Frame) error {
			if f.TS.After(observed) {
				frame = f
				return analyze.ErrStopFrames
			}
			return nil
		})
		if err != nil || frame == nil {
			t.Fatalf("no sample after the live queries: %v", err)
		}
		got := map[string][]replay.Table{}
		for _, v := range replay.Views {
			got[v.Name] = v.Eval(frame)
			if len(got[v.Name]) != len(liveViews[v.Name]) {
				t.Fatalf("%s: %d results, live %d", v.Name, len(got[v.Name]), len(liveViews[v.Name]))
			}
			for i := range got[v.Name] {
				if liveViews[v.Name][i].Columns == nil && len(liveViews[v.Name][i].Rows) == 0 {
					continue // the server sent no row description for an empty result
				}
				if diff := cmp.Diff(liveViews[v.Name][i].Columns, got[v.Name][i].Columns); diff != "" {
					t.Errorf("%s: columns differ from the runbook's (-live +replay):\n%s", v.Name, diff)
				}
			}
		}
		check := func(view string, res int, ordered bool, cols ...string) {
			t.Helper()
			pids := staged
			if view == replay.ViewVerify || view == replay.ViewPrepared {
				pids = nil // counts, modules, prepared transactions: every row
			}
			want := rows(liveViews[view][res], pids, cols...)
			have := rows(got[view][res], pids, cols...)
			if !ordered {
				want, have = sorted(want), sorted(have)
			}
			if len(want) == 0 {
				t.Errorf("%s: the live query shows none of the staged sessions", view)
			}
			if diff := cmp.Diff(want, have); diff != "" {
				t.Errorf("%s (%s): replay differs from the live query (-live +replay):\n%s", view, strings.Join(cols, ", "), diff)
			}
		}
		// Same rows in the same order (ties aside), every column but
		// the ages, which run on.
		check(replay.ViewActivity, 1, true, "pid", "usename", "application_name", "state", "wait_event_type", "wait_event", "query")
		check(replay.ViewLocks, 0, false, "pid", "usename", "application_name", "mode", "granted", "relation", "query")
		if c.Scenario != "row-contention" {
			check(replay.ViewAccessExclusive, 0, false, "pid", "application_name", "granted", "relation", "query")
		}
		check(replay.ViewBlocking, 0, false, "waiting_pid", "waiting_app", "blocking_pid", "blocking_app", "waiting_query", "blocking_query")
		if c.Scenario == "prepared-root" {
			check(replay.ViewPrepared, 0, true, "gid", "database", "owner", "prepared")
		}
		for _, res := range []int{0, 1, 2} {
			check(replay.ViewVerify, res, true, liveViews[replay.ViewVerify][res].Columns...)
		}
		// Rows ordered by age in the runbook: the waiters' order.
		order := func(tb replay.Table) []string {
			var pids []string
			for r := range tb.Rows {
				if p := tb.Get(r, "pid"); staged[p] && tb.Get(r, "granted") == "f" {
					pids = append(pids, p)
				}
			}
			return pids
		}
		if diff := cmp.Diff(order(liveViews[replay.ViewLocks][0]), order(got[replay.ViewLocks][0])); diff != "" {
			t.Errorf("locks: waiting rows in another order than live (-live +replay):\n%s", diff)
		}
	})
}

// The views print what psql prints: the same rows through the real psql
// and through WritePsql must give the same text.
func TestPsqlFormatMatchesPsql(t *testing.T) {
	pgtest.SkipIfShort(t)
	psql, err := exec.LookPath("psql")
	if p := filepath.Join(os.Getenv("PG_BIN"), "psql"); os.Getenv("PG_BIN") != "" {
		if _, serr := os.Stat(p); serr == nil {
			psql, err = p, nil
		}
	}
	if err != nil {
		t.Fatalf("psql not found: %v", err)
	}
	db := pgtest.NewDatabase(t, srv)
	sql := `SELECT * FROM (VALUES
		(7, E'select 1,\n  2', NULL::text, true),
		(12345, 'x', 'idle in transaction', false),
		(-3, E'tab\there', 'ü', NULL),
		(0, E'esc\x1b[2Jx\rcr', E'bell\x07', 'f')) v(pid, query, state, granted)`
	out, err := exec.Command(psql, "-X", "-P", "pager=off", "-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	tb := replay.Table{Columns: []string{"pid", "query", "state", "granted"}, Right: []bool{true, false, false, false}}
	s := func(v string) *string { return &v }
	tb.Rows = [][]*string{
		{s("7"), s("select 1,\n  2"), nil, s("t")},
		{s("12345"), s("x"), s("idle in transaction"), s("f")},
		{s("-3"), s("tab\there"), s("ü"), nil},
		{s("0"), s("esc\x1b[2Jx\rcr"), s("bell\x07"), s("f")},
	}
	var b strings.Builder
	if err := tb.WritePsql(&b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(out), b.String()); diff != "" {
		t.Errorf("WritePsql differs from psql (-psql +replay):\n%s", diff)
	}
}
