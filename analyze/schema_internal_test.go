package analyze

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/parquet-go/parquet-go"

	"github.com/lockscope/lockscope/capture/recording"
)

// fill sets every field of *p to a value of its own, derived from seed and
// the field's position, so that a column read into the wrong field shows.
func fill[T any](p *T, seed int) {
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		n := int64(seed*100 + i + 1)
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int64, reflect.Int32:
			f.SetInt(n)
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + "-" + string(rune('a'+seed)))
		case reflect.Bool:
			f.SetBool((seed+i)%2 == 0)
		case reflect.Pointer:
			if seed%2 == 0 {
				e := reflect.New(f.Type().Elem())
				e.Elem().SetInt(n)
				f.Set(e)
			}
		}
	}
}

func rows[T any](n int) []T {
	out := make([]T, n)
	for i := range out {
		fill(&out[i], i)
	}
	return out
}

// readRows reads one table file with analyze's reader.
func readRows[T any](t *testing.T, path string, conv func(columns) (func(int, *T), error)) []T {
	t.Helper()
	var out []T
	if err := readAll(context.Background(), memory.NewGoAllocator(), path, conv, func(r *T) { out = append(out, *r) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every column of every table analyze reads comes back into the field
// that wrote it: the readers are bound by capture/recording's row structs.
func TestReadersFollowRowStructs(t *testing.T) {
	dir := t.TempDir()
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tick := rows[recording.Tick](1)[0]
	tick.Kind = recording.TickFull
	s := &recording.Sample{Tick: &tick, Activity: rows[recording.Activity](3), Locks: rows[recording.Lock](3),
		Edges: rows[recording.Edge](3), Relations: rows[recording.Relation](3), Events: rows[recording.Event](3),
		PgBouncerServers: rows[recording.PgBouncerServer](3), OdooModules: rows[recording.OdooModule](3),
		PreparedXacts: rows[recording.PreparedXact](3)}
	seg, err := recording.WriteSegment(dir, recording.Meta{Segment: recording.NewSegmentID(ts), Cluster: "c"}, s)
	if err != nil {
		t.Fatal(err)
	}
	files := seg.Files
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: analyze read\n%+v\nwant\n%+v", name, got, want)
		}
	}
	check("ticks", readRows(t, files[recording.TableTicks], convTick), []recording.Tick{tick})
	check("activity", readRows(t, files[recording.TableActivity], convActivity), s.Activity)
	check("locks", readRows(t, files[recording.TableLocks], convLock), s.Locks)
	check("edges", readRows(t, files[recording.TableEdges], convEdge), s.Edges)
	check("relations", readRows(t, files[recording.TableRelations], convRelation), s.Relations)
	check("pgbouncer_servers", readRows(t, files[recording.TablePgBouncerServers], convPgBouncerServer), s.PgBouncerServers)
	check("odoo_modules", readRows(t, files[recording.TableOdooModules], convOdooModule), s.OdooModules)
	check("prepared_xacts", readRows(t, files[recording.TablePreparedXacts], convPreparedXact), s.PreparedXacts)
	// The sealer may add its own events; the appended ones are there as written.
	events := readRows(t, files[recording.TableEvents], convEvent)
	for _, e := range s.Events {
		if !slicesContain(events, e) {
			t.Errorf("events: %+v not read back from %+v", e, events)
		}
	}
}

func slicesContain[T any](s []T, v T) bool {
	for _, x := range s {
		if reflect.DeepEqual(x, v) {
			return true
		}
	}
	return false
}

// A file whose column is renamed or retyped against the row struct is
// refused with an error naming the column, not read as NULL.
func TestReaderRefusesChangedColumn(t *testing.T) {
	type renamed struct {
		SampleID     int64 `parquet:"sample_id"`
		TS           int64 `parquet:"ts,timestamp(microsecond)"`
		PID          int32 `parquet:"pid"`
		BackendStart int64 `parquet:"backend_start,optional,timestamp(microsecond)"`
		BlockingPID  int32 `parquet:"blocker_pid"`
	}
	type retyped struct {
		SampleID     int64 `parquet:"sample_id"`
		TS           int64 `parquet:"ts,timestamp(microsecond)"`
		PID          int64 `parquet:"pid"`
		BackendStart int64 `parquet:"backend_start,optional,timestamp(microsecond)"`
		BlockingPID  int32 `parquet:"blocking_pid"`
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "renamed.parquet"), filepath.Join(dir, "retyped.parquet")
	if err := parquet.WriteFile(a, []renamed{{SampleID: 1, PID: 2, BlockingPID: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := parquet.WriteFile(b, []retyped{{SampleID: 1, PID: 2, BlockingPID: 3}}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{a: `no column "blocking_pid"`, b: `column "pid" is int64`} {
		err := readAll(context.Background(), memory.NewGoAllocator(), path, convEdge, func(*recording.Edge) {})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming the file and %s", filepath.Base(path), err, want)
		}
	}
}
