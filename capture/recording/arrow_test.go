package recording_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lockscope/lockscope/capture/recording"
)

func p64(v int64) *int64 { return &v }
func p32(v int32) *int32 { return &v }

// A recording must be readable by any Parquet engine. Arrow's reader, not
// the one that wrote it, reads every column of every table back.
func TestArrowReadsEveryColumn(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	ts := t0.UnixMicro()
	meta := recording.Meta{Segment: recording.NewSegmentID(t0), Cluster: "c1", AbsentColumns: []string{"pg_locks.waitstart"}}
	sample := recording.Sample{
		Tick: &recording.Tick{SampleID: 7, TS: ts, ClientTS: ts + 3, Kind: recording.TickFull, Mode: "burst", LockWaiters: 2,
			ActivityRows: 2, LockRows: 3, EdgeRows: 1, QueryMicros: 850, ServerMicros: 400, ClientMicros: 300, CapturePID: 9},
		Activity: []recording.Activity{
			{SampleID: 7, TS: ts, DatID: 5, DatName: "odoo", PID: 11, LeaderPID: 10, UseSysID: 10, UseName: "odoo",
				ApplicationName: "odoo-77", ClientAddr: "::1", ClientHostname: "app1", ClientPort: 40000, BackendStart: ts - 9,
				XactStart: ts - 8, QueryStart: ts - 7, StateChange: ts - 6, WaitEventType: "Lock", WaitEvent: "relation",
				State: "active", BackendXID: 900, BackendXmin: 899, QueryID: -123456789, Query: "ALTER TABLE t ADD x int -- `x` <b>",
				BackendType: "client backend"},
			{SampleID: 7, TS: ts, PID: 12, BackendType: "checkpointer"},
		},
		Locks: []recording.Lock{
			{SampleID: 7, TS: ts, LockType: "relation", Database: p64(0), Relation: 1262, Page: p32(0), Tuple: 3,
				ClassID: p64(0), ObjID: p64(0), ObjSubID: p32(0), VirtualTransaction: "3/4", PID: 11,
				Mode: "AccessExclusiveLock", Granted: false, FastPath: false, WaitStart: ts - 5},
			{SampleID: 7, TS: ts, LockType: "transactionid", TransactionID: 900, VirtualTransaction: "3/4", PID: 11, Mode: "ExclusiveLock", Granted: true},
			{SampleID: 7, TS: ts, LockType: "virtualxid", VirtualXID: "3/4", VirtualTransaction: "3/4", Mode: "ExclusiveLock", Granted: true, FastPath: true},
		},
		Edges:            []recording.Edge{{SampleID: 7, TS: ts, PID: 11, BackendStart: ts - 9, BlockingPID: 0}},
		Relations:        []recording.Relation{{SampleID: 7, Database: 5, Relation: 16400, Schema: "public", Name: "stock_move", Kind: "r"}},
		Events:           []recording.Event{{TS: ts, Kind: recording.EventGap, Message: "gap", GapStart: ts - 100, GapEnd: ts - 1, CapturePID: 9}},
		PgBouncerPools:   []recording.PgBouncerPool{{SampleID: 7, TS: ts, Database: "odoo", User: "odoo", ClActive: 4, ClWaiting: 2, SvActive: 1, SvIdle: 1, SvUsed: 1, SvTested: 1, SvLogin: 1, MaxWaitMicros: 12, PoolMode: "transaction"}},
		PgBouncerServers: []recording.PgBouncerServer{{SampleID: 7, TS: ts, Type: "S", User: "odoo", Database: "odoo", State: "active", Addr: "127.0.0.1", Port: 5432, LocalAddr: "127.0.0.1", LocalPort: 40001, ConnectTime: ts - 50, RequestTime: ts - 2, RemotePID: 11, ApplicationName: "odoo-77"}},
		OdooModules:      []recording.OdooModule{{SampleID: 7, TS: ts, Name: "stock", State: "to upgrade"}},
		PreparedXacts:    []recording.PreparedXact{{SampleID: 7, TS: ts, Transaction: 901, GID: "tm-1'x", Prepared: ts - 40, Owner: "odoo", Database: "odoo"}},
	}
	seg, err := recording.WriteSegment(dir, meta, &sample)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		recording.TableTicks: []recording.Tick{*sample.Tick}, recording.TableActivity: sample.Activity,
		recording.TableLocks: sample.Locks, recording.TableEdges: sample.Edges, recording.TableRelations: sample.Relations,
		recording.TableEvents: sample.Events, recording.TablePgBouncerPools: sample.PgBouncerPools,
		recording.TablePgBouncerServers: sample.PgBouncerServers, recording.TableOdooModules: sample.OdooModules,
		recording.TablePreparedXacts: sample.PreparedXacts,
	}
	for _, table := range recording.Tables() {
		t.Run(table, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			f, err := os.Open(seg.Files[table])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tbl, err := pqarrow.ReadTable(context.Background(), f, parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
			if err != nil {
				t.Fatal(err)
			}
			defer tbl.Release()
			compareTable(t, tbl, reflect.ValueOf(want[table]))
		})
	}
}

// compareTable checks every column of tbl against the struct fields of the
// rows, by the fields' parquet names.
func compareTable(t *testing.T, tbl arrow.Table, rows reflect.Value) {
	t.Helper()
	if int(tbl.NumRows()) != rows.Len() {
		t.Fatalf("arrow reads %d rows, want %d", tbl.NumRows(), rows.Len())
	}
	typ := rows.Type().Elem()
	if int(tbl.NumCols()) != typ.NumField() {
		t.Errorf("arrow reads %d columns, the row type has %d fields", tbl.NumCols(), typ.NumField())
	}
	for f := range typ.NumField() {
		field := typ.Field(f)
		tag := strings.Split(field.Tag.Get("parquet"), ",")
		name, optional, timestamp := tag[0], false, false
		for _, o := range tag[1:] {
			optional = optional || o == "optional"
			timestamp = timestamp || strings.HasPrefix(o, "timestamp")
		}
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Errorf("column %s: not in arrow's schema %v", name, tbl.Schema())
			continue
		}
		col := tbl.Column(idx[0])
		if timestamp {
			tt, ok := col.DataType().(*arrow.TimestampType)
			if !ok || tt.Unit != arrow.Microsecond || tt.TimeZone != "UTC" {
				t.Errorf("column %s: arrow type %v, want timestamp[us, tz=UTC]", name, col.DataType())
			}
		}
		var got []any
		for _, chunk := range col.Data().Chunks() {
			for i := range chunk.Len() {
				got = append(got, arrowValue(chunk, i))
			}
		}
		for r := range rows.Len() {
			want := goValue(rows.Index(r).Field(f), optional)
			if !reflect.DeepEqual(got[r], want) {
				t.Errorf("row %d column %s: arrow reads %#v, want %#v", r, name, got[r], want)
			}
		}
	}
}

func arrowValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.Boolean:
		return a.Value(i)
	}
	return "unsupported " + a.DataType().String()
}

func goValue(v reflect.Value, optional bool) any {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	} else if optional && v.IsZero() {
		return nil
	}
	switch v.Kind() {
	case reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	}
	return "unsupported " + v.Kind().String()
}
