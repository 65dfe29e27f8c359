package lab_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
	"github.com/lockscope/lockscope/lab"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, &srv, pgtest.Options{}))
}

// trainee runs statements from another connection, as a person in psql
// would, a moment after the brief.
func trainee(t *testing.T, dsn string, stmts ...string) {
	go func() {
		time.Sleep(1500 * time.Millisecond)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Errorf("%s: %v", s, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
}

func criterion(s *lab.Score, name string) lab.Criterion {
	for _, c := range s.Criteria {
		if c.Name == name {
			return c
		}
	}
	return lab.Criterion{}
}

// A trainee who cancels the running report, the root blocker, contains
// the drill with full marks; on a throwaway server lab starts itself.
func TestLabCancelTheRightPID(t *testing.T) {
	pgtest.SkipIfShort(t)
	out := filepath.Join(t.TempDir(), "drill")
	var brief lab.Brief
	score, err := lab.Run(context.Background(), lab.Config{
		Scenario: "report-vs-alter", Out: out, TimeLimit: time.Minute,
		Stage: scenario.Options{Table: "stock_move", Workers: 5, AppPrefix: "shop"},
		Ready: func(b lab.Brief) {
			brief = b
			trainee(t, b.DSN, "SELECT pg_cancel_backend("+itoa(b.Staged.Root.PID)+")")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	score.Write(&b)
	t.Log(b.String())
	if !score.Contained || score.Points != 100 {
		t.Errorf("contained %v, %d points; want contained, 100", score.Contained, score.Points)
	}
	if len(score.Events) != 1 || score.Events[0].PID != brief.Staged.Root.PID || score.Events[0].What != "cancelled" {
		t.Errorf("events %+v, want one: cancelled pid %d", score.Events, brief.Staged.Root.PID)
	}
	if score.WaiterSeconds <= 0 || score.Best < 0 || score.Best > score.WaiterSeconds {
		t.Errorf("waiter-seconds %.1f, best %.1f", score.WaiterSeconds, score.Best)
	}
	if _, err := os.Stat(filepath.Join(out, "ticks")); err != nil {
		t.Errorf("the drill's recording was not kept in --out: %v", err)
	}
	// The throwaway server is gone.
	if conn, err := pgx.Connect(context.Background(), brief.DSN); err == nil {
		conn.Close(context.Background())
		t.Error("the throwaway server still accepts connections after the drill")
	}
}

// A trainee who terminates the pg_dump bystander first loses the points
// for the protected session and the right first pid, even though the
// drill is contained in the end.
func TestLabTerminateTheBackup(t *testing.T) {
	pgtest.SkipIfShort(t)
	db := pgtest.NewDatabase(t, srv)
	var brief lab.Brief
	score, err := lab.Run(context.Background(), lab.Config{
		Scenario: "create-index-pgdump", DSN: db, TimeLimit: time.Minute,
		Stage: scenario.Options{Table: "account_move", Workers: 4, AppPrefix: "erp"},
		Ready: func(b lab.Brief) {
			brief = b
			trainee(t, db, "SELECT pg_terminate_backend("+itoa(b.Staged.Bystanders[0].PID)+")",
				"SELECT pg_terminate_backend("+itoa(b.Staged.Root.PID)+")")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	score.Write(&b)
	t.Log(b.String())
	if !score.Contained {
		t.Error("not contained")
	}
	if c := criterion(score, "protected sessions left alone"); c.Earned != 0 || !strings.Contains(c.Why, itoa(brief.Staged.Bystanders[0].PID)) {
		t.Errorf("protected: %+v", c)
	}
	if c := criterion(score, "right session first"); c.Earned != 0 {
		t.Errorf("right first: %+v", c)
	}
	if c := criterion(score, "cancel before terminate"); c.Earned != c.Of {
		t.Errorf("terminating an idle-in-transaction root is the runbook's step: %+v", c)
	}
	if score.Points != 30+15+15 {
		t.Errorf("%d points, want 60", score.Points)
	}
}

// Ctrl-C while the incident stands: the drill is scored as not contained,
// and every staged session is gone from the server.
func TestLabInterrupted(t *testing.T) {
	pgtest.SkipIfShort(t)
	db := pgtest.NewDatabase(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var brief lab.Brief
	score, err := lab.Run(ctx, lab.Config{
		Scenario: "cron-vs-alter", DSN: db, TimeLimit: time.Minute,
		Ready: func(b lab.Brief) {
			brief = b
			time.AfterFunc(1500*time.Millisecond, cancel)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if score.Contained || score.Points != 0 {
		t.Errorf("an interrupted drill scored as contained: %+v", score)
	}
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1) OR application_name = 'lockscope-capture'",
		brief.Staged.PIDs()).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d staged or recorder sessions left on the server", left)
	}
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

// A trainee who follows the runbook in every scenario: find the root with
// the blocking-graph query (the blocking pid that waits for no one),
// cancel it if it runs a statement, terminate it if it sits idle in
// transaction. Every drill is contained with full marks.
func TestLabRunbookTraineeEveryScenario(t *testing.T) {
	pgtest.SkipIfShort(t)
	for _, sc := range scenario.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			db := pgtest.NewDatabase(t, srv)
			acted := make(chan int32, 1)
			score, err := lab.Run(context.Background(), lab.Config{
				Scenario: sc.Name, DSN: db, TimeLimit: time.Minute,
				Stage: scenario.Options{Table: "stock_quant", Workers: 4, AppPrefix: "drill"},
				Ready: func(lab.Brief) { go runbookTrainee(t, db, acted) },
			})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			score.Write(&b)
			if !score.Contained || score.Points != 100 {
				t.Errorf("contained %v, %d points:\n%s", score.Contained, score.Points, b.String())
			}
			if root := <-acted; len(score.Events) == 0 || score.Events[0].PID != root {
				t.Errorf("the trainee acted on pid %d; events %+v", root, score.Events)
			}
		})
	}
}

func runbookTrainee(t *testing.T, dsn string, acted chan<- int32) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Error(err)
		acted <- 0
		return
	}
	defer conn.Close(ctx)
	time.Sleep(time.Second)
	for ctx.Err() == nil {
		var root int32
		var state string
		err := conn.QueryRow(ctx, `select distinct b.pid, b.state
			from pg_stat_activity w
			join pg_stat_activity b on b.pid = any(pg_blocking_pids(w.pid))
			where w.datname = current_database()
			  and cardinality(pg_blocking_pids(b.pid)) = 0`).Scan(&root, &state)
		if err != nil {
			time.Sleep(100 * time.Millisecond) // a retrying migration: nobody waits right now
			continue
		}
		fn := "pg_terminate_backend"
		if state == "active" {
			fn = "pg_cancel_backend"
		}
		if _, err := conn.Exec(ctx, "select "+fn+"($1)", root); err != nil {
			t.Error(err)
		}
		acted <- root
		return
	}
	t.Error("the trainee never found a root blocker")
	acted <- 0
}
