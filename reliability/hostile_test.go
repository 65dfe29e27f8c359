package reliability_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/replay"
	"github.com/lockscope/lockscope/report"
)

// hostile is text built to break whatever shows it: Markdown tables and
// fences, HTML, DOT, terminals, and UTF-8.
const hostile = "<script>alert(1)</script> ``` | a | b | \n # heading \n" +
	`digraph { injected -> node [label="x"] } "quoted" 'single' \\ ` +
	"\x1b[2J\x1b]0;title\x07 bell \xff\xfe not utf-8 \r\n tab\tend"

// A 1 MB query and names full of markup, control bytes and invalid UTF-8
// go through the whole pipe on a real server: the recorder keeps them
// byte for byte, every file reads back, and the report and the replay
// views escape them.
func TestHostileTextThroughThePipe(t *testing.T) {
	pgtest.SkipIfShort(t)
	ctx := context.Background()
	// track_activity_query_size at its maximum: pg_stat_activity keeps
	// 1 MB of query text.
	srv, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"track_activity_query_size": "1048576"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	admin, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// SQL_ASCII stores any byte: the invalid UTF-8 reaches the recorder.
	if _, err := admin.Exec(ctx, "CREATE DATABASE hostile ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN("hostile")
	table := `"evil ` + "`|<b>" + `table"`
	setup, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close(ctx)
	if _, err := setup.Exec(ctx, "CREATE TABLE "+table+" (id int); INSERT INTO "+table+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "rec")
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	full := make(chan struct{}, 256)
	go func() {
		done <- capture.Run(rctx, capture.Config{DSN: dsn, Out: out, ProbeInterval: 50 * time.Millisecond, FullInterval: 200 * time.Millisecond,
			BurstInterval: 100 * time.Millisecond, BurstHold: 300 * time.Millisecond, QueryMax: 2 << 20,
			OnTick: func(tk recording.Tick) {
				if tk.Kind == recording.TickFull && tk.LockWaiters > 0 {
					select {
					case full <- struct{}{}:
					default:
					}
				}
			}})
	}()

	session := func(app string) *pgx.Conn {
		cc, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cc.RuntimeParams["application_name"] = app
		c, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The root: an idle transaction whose last query is 1 MB of hostile text.
	big := "UPDATE " + table + " SET id = id /* " + hostile + strings.Repeat("A", 1<<20-2048) + " */ WHERE id = 1"
	root := session("cron " + strings.ReplaceAll(hostile, "\n", " "))
	defer root.Close(ctx)
	var rootPID int32
	if err := root.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&rootPID); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Exec(ctx, big); err != nil {
		t.Fatal(err)
	}
	// The DDL and a reader queue behind it.
	ddl := session("upgrade -> x [color=red]")
	defer ddl.Close(ctx)
	ddlDone := make(chan error, 1)
	go func() {
		_, err := ddl.Exec(ctx, "ALTER TABLE "+table+" ADD COLUMN c int /* "+hostile+" */")
		ddlDone <- err
	}()
	reader := session("reader")
	defer reader.Close(ctx)
	readDone := make(chan error, 1)
	go func() {
		_, err := reader.Exec(ctx, "SELECT count(*) FROM "+table+" /* `x` <i>y</i> */")
		readDone <- err
	}()
	for range 30 {
		select {
		case <-full:
		case <-time.After(30 * time.Second):
			t.Fatal("no full sample saw the lock queue")
		}
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", rootPID); err != nil {
		t.Fatal(err)
	}
	if err := <-ddlDone; err != nil {
		t.Fatal(err)
	}
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Every file reads back, and the recorder kept the query byte for byte.
	c := check(t, out)
	if len(c.Invalid) > 0 {
		t.Fatal(c.Invalid)
	}
	segs, _ := recording.List(out)
	var recorded []string
	for _, s := range segs {
		rows, _, err := recording.ReadTable[recording.Activity](s.Files[recording.TableActivity])
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rows {
			if a.PID == rootPID {
				recorded = append(recorded, a.Query)
			}
		}
	}
	if len(recorded) == 0 {
		t.Fatal("the root was not recorded")
	}
	for _, q := range recorded {
		if q != big {
			n := 0
			for n < len(q) && n < len(big) && q[n] == big[n] {
				n++
			}
			t.Fatalf("the root's query was recorded as %d bytes (sent %d), differing from byte %d", len(q), len(big), n)
		}
	}

	// The analysis reads it all with Arrow and finds the incident.
	res, err := analyze.Run(ctx, analyze.Config{Dirs: []string{out}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 1 || len(res.Incidents[0].RootBlockers) != 1 || res.Incidents[0].RootBlockers[0].PID != rootPID {
		t.Fatalf("analysis: %+v", res.Incidents)
	}
	dir := filepath.Join(t.TempDir(), "report")
	if err := report.Write(ctx, dir, res); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "postmortem.md"))
	if err != nil {
		t.Fatal(err)
	}
	checkNoControls(t, "postmortem.md", md)
	// Outside code fences: no raw HTML, and every table row has as many
	// cells as its header.
	inFence, fence := false, ""
	cells := 0
	for i, line := range strings.Split(string(md), "\n") {
		if m := regexp.MustCompile("^(`{3,})").FindString(line); m != "" && (!inFence || strings.TrimSpace(line) == fence) {
			inFence, fence = !inFence, m
			continue
		}
		if inFence {
			continue
		}
		if strings.Contains(line, "<script") || strings.Contains(line, "<b>") || strings.Contains(line, "<i>") {
			t.Errorf("line %d: raw HTML outside a code block: %q", i+1, line)
		}
		if strings.HasPrefix(line, "|") {
			n := len(regexp.MustCompile(`(^|[^\\])\|`).FindAllString(line, -1))
			if strings.HasPrefix(line, "|---") || cells == 0 {
				cells = n
			} else if n != cells {
				t.Errorf("line %d: %d cells, the table has %d: %q", i+1, n, cells, line)
			}
		} else {
			cells = 0
		}
	}
	for _, name := range []string{"blocking-1.dot", "timeline-1.dot"} {
		dot, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		checkNoControls(t, name, dot)
		// Every statement is the graph's own: a keyword, a node or an
		// edge of generated ids; labels stay inside their quotes.
		stmt := regexp.MustCompile(`^\s*(digraph \w+ \{|\}|(graph|node|edge) \[.*\];|[\w]+ \[.*\];|[\w]+ -> [\w]+( \[.*\])?;|subgraph \w+ \{|rank=\w+;.*|)$`)
		for i, line := range strings.Split(string(dot), "\n") {
			if !stmt.MatchString(line) || strings.Count(line, `"`)-strings.Count(line, `\"`) > 0 && (strings.Count(line, `"`)-strings.Count(line, `\"`))%2 != 0 {
				t.Errorf("%s line %d: not a statement of the graph: %q", name, i+1, line)
			}
		}
	}
	for _, name := range []string{"blocking-1.svg", "timeline-1.svg"} {
		svg, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(svg, []byte("<script")) {
			t.Errorf("%s: a script element", name)
		}
	}

	// The replay views of the peak escape it too.
	var b bytes.Buffer
	if err := replay.Run(ctx, &b, replay.Options{Dirs: []string{out}, At: "peak"}); err != nil {
		t.Fatal(err)
	}
	checkNoControls(t, "replay", b.Bytes())
	if !strings.Contains(b.String(), `\x1B[2J`) {
		t.Error("the replay does not show the escape sequence escaped")
	}
}

func checkNoControls(t *testing.T, name string, b []byte) {
	t.Helper()
	for i, c := range b {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
			t.Errorf("%s: control byte %#x at %d: %q", name, c, i, b[max(0, i-40):min(len(b), i+40)])
			return
		}
	}
}
